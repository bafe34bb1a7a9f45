"""Can a SavedModel's serving signature run on TF Serving's GPU build?"""

from __future__ import annotations

import collections
import ctypes
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class ServingCheckError(ValueError):
    """The exported graph would not run (fully) on a GPU TF Serving."""


@dataclass
class CheckReport:
    """Ops reachable from the signature, by type and count, and any problems."""

    signature: str
    ops: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # False when this TensorFlow did not expose its kernel registry, so ops
    # without a GPU kernel could not be looked for (see `_kernel_devices`).
    kernels_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


# Ops that exist on every device without a kernel of their own (function
# calls and graph plumbing are resolved by the runtime, not by kernels).
_NO_KERNEL_NEEDED = {"NoOp", "StatefulPartitionedCall", "PartitionedCall", "Placeholder", "_Arg", "_Retval"}


class _TFBuffer(ctypes.Structure):
    """`TF_Buffer` of TensorFlow's C API (`tensorflow/c/tf_buffer.h`)."""

    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("data_deallocator", ctypes.c_void_p)]


# Where the C API's symbols live in the pip package, per platform:
# (TF_GetRegisteredKernelsForOp, TF_Status / TF_Buffer functions).
_C_API_LIBRARIES = {
    "linux": ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2"),
    "darwin": ("libtensorflow_cc.2.dylib", "libtensorflow_framework.2.dylib"),
}


def _kernel_devices(ops: Iterable[str]) -> dict[str, set[str]] | None:
    """The device types with a registered kernel, per op type; None if unknown.

    TensorFlow's kernel registry has no Python API under `tf.*`; its public
    interface is the C API, `TF_GetRegisteredKernelsForOp` (`tensorflow/c/c_api.h`),
    which returns a serialized `KernelList`. It is called here with ctypes
    from the shared libraries of the installed package (found with the public
    `tf.sysconfig.get_lib()`), after `import tensorflow` has registered the
    kernels; no private TensorFlow module is imported. Where the
    libraries or symbols are not found (another platform, a renamed
    library), this returns None and `check` warns that the kernel check was
    skipped; the other checks still run.
    """
    import tensorflow as tf
    from tensorflow.core.framework import kernel_def_pb2

    names = _C_API_LIBRARIES.get(sys.platform)
    if names is None:
        return None
    try:
        kernels_lib, status_lib = (ctypes.CDLL(os.path.join(tf.sysconfig.get_lib(), n)) for n in names)
        lookup = kernels_lib.TF_GetRegisteredKernelsForOp
        new_status, delete_status = status_lib.TF_NewStatus, status_lib.TF_DeleteStatus
        get_code, delete_buffer = status_lib.TF_GetCode, status_lib.TF_DeleteBuffer
    except (OSError, AttributeError):  # no such library or symbol: "unknown", never a crash
        return None
    lookup.restype, lookup.argtypes = ctypes.POINTER(_TFBuffer), [ctypes.c_char_p, ctypes.c_void_p]
    new_status.restype, delete_status.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    get_code.restype, get_code.argtypes = ctypes.c_int, [ctypes.c_void_p]
    delete_buffer.argtypes = [ctypes.POINTER(_TFBuffer)]

    devices: dict[str, set[str]] = {}
    status = new_status()
    try:
        for op in ops:
            buffer = lookup(op.encode(), status)
            if get_code(status) != 0 or not buffer:
                return None
            kernels = kernel_def_pb2.KernelList.FromString(
                ctypes.string_at(buffer.contents.data, buffer.contents.length)
            )
            delete_buffer(buffer)
            devices[op] = {k.device_type for k in kernels.kernel}
    finally:
        delete_status(status)
    return devices


def _read_graph(path: str) -> Any:
    """The first MetaGraphDef of the SavedModel at `path`; `ServingCheckError` naming the file otherwise."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    if not os.path.isdir(path):
        what = "no such directory" if not os.path.exists(path) else "not a directory"
        raise ServingCheckError(f"{path}: {what} (a SavedModel is a directory)")
    file = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(file):
        raise ServingCheckError(f"{file}: no such file; {path} is not a SavedModel")
    proto = saved_model_pb2.SavedModel()
    try:
        with open(file, "rb") as f:
            proto.ParseFromString(f.read())
    except (DecodeError, OSError) as error:
        raise ServingCheckError(
            f"{file} is not a valid SavedModel graph (truncated or corrupt): {error}"
        ) from None
    if not proto.meta_graphs:
        raise ServingCheckError(f"{file} holds no graph (no MetaGraphDef)")
    return proto.meta_graphs[0]


_DATA_SHARD = re.compile(r"variables\.data-(\d{5})-of-(\d{5})")


_VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}


def _variable_problems(path: str, meta: Any) -> list[str]:
    """What keeps TF Serving from restoring the variables of the SavedModel at `path`, file by file.

    The index must exist (unless the graph has no variables) and open; the data shards it is written with
    (`variables.data-00000-of-0000N`) must all exist; every variable is read
    once, so a truncated or corrupt shard is found (the whole checkpoint is
    read, as the server does when it loads the version).
    """
    import tensorflow as tf

    folder = os.path.join(path, "variables")
    index = os.path.join(folder, "variables.index")
    if not os.path.isfile(index):
        # TF Serving then restores nothing: fine for a graph without variables.
        if any(node.op in _VARIABLE_OPS for node in meta.graph_def.node):
            return [f"{index}: no such file; the graph's variables cannot be restored"]
        return []
    shards = [m for m in map(_DATA_SHARD.fullmatch, os.listdir(folder)) if m]
    if not shards:
        return [
            f"{os.path.join(folder, 'variables.data-00000-of-00001')}: no such file (no variables.data-* "
            "shard); the variables' values are missing"
        ]
    count = max(int(m.group(2)) for m in shards)
    missing = sorted(set(range(count)) - {int(m.group(1)) for m in shards if int(m.group(2)) == count})
    if missing:
        absent = ", ".join(os.path.join(folder, f"variables.data-{i:05d}-of-{count:05d}") for i in missing)
        return [f"{absent}: no such file; the variables' values are missing"]
    prefix = os.path.join(folder, "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
    except Exception as error:  # OpError, or IndexError / RuntimeError from the C++ reader
        return [f"{index} cannot be read (truncated or corrupt): {_one_line(error)}"]
    # The shard holding a variable is not exposed by the reader; with one shard, it is that one.
    data = os.path.join(folder, f"variables.data-00000-of-{count:05d}") if count == 1 else f"{prefix}.data-*"
    for name in names:
        try:
            reader.get_tensor(name)
        except Exception as error:  # "Read less bytes than requested" is an IndexError
            reason = _one_line(error)
            return [f"{data}: variable {name!r} cannot be read (truncated or corrupt): {reason}"]
    return []


def _one_line(error: BaseException) -> str:
    return " ".join(str(getattr(error, "message", None) or error).split())


def check(path: str, signature: str = "serving_default", raise_on_error: bool = True) -> CheckReport:
    """Checks every op reachable from `signature` in the SavedModel at `path`.

    First the files: `saved_model.pb` must exist and parse, and the
    variables (`variables/variables.index` and every
    `variables/variables.data-*` shard it needs) must be present and
    readable, as TF Serving reads them when it loads the version; a problem
    with a file names it. A graph that cannot be read raises
    `ServingCheckError` whatever `raise_on_error`.

    Problems reported (all of them, not just the first):
    - a missing or unreadable variables file;
    - an `XlaCallModule` (a jax export: compiled for one platform);
    - a node pinned to a CPU device;
    - an op type without a GPU (or device-agnostic) kernel in this
      TensorFlow build.

    Host-memory ops such as `Assert` are fine: their kernel is
    device-agnostic. Raises `ServingCheckError` listing the problems unless
    `raise_on_error=False`; returns the `CheckReport` otherwise. Where this
    TensorFlow does not expose its kernel registry, the kernel look-up is
    skipped with a `RuntimeWarning` and the other checks still run.
    """
    meta = _read_graph(path)
    if signature not in meta.signature_def:
        raise ServingCheckError(f"{path} has no signature {signature!r}; it has {sorted(meta.signature_def)}")
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    graph_nodes = {n.name: n for n in meta.graph_def.node}

    report = CheckReport(signature)
    report.problems.extend(_variable_problems(path, meta))
    counts: collections.Counter[str] = collections.Counter()
    seen_functions: set[str] = set()

    def visit_node(node: Any, where: str) -> None:
        counts[node.op] += 1
        if node.device and "CPU" in node.device.upper():
            report.problems.append(f"{where}/{node.name} ({node.op}) is pinned to {node.device}")
        called = [node.op] if node.op in library else []
        for attr in node.attr.values():
            if attr.HasField("func"):
                called.append(attr.func.name)
            called.extend(f.name for f in attr.list.func)
        for name in called:
            visit_function(name)

    def visit_function(name: str) -> None:
        if name in seen_functions or name not in library:
            return
        seen_functions.add(name)
        for node in library[name].node_def:
            visit_node(node, name)

    # Walk the top-level graph backwards from the signature's outputs.
    pending = [t.name.split(":")[0] for t in meta.signature_def[signature].outputs.values()]
    seen_nodes: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in graph_nodes:
            continue
        seen_nodes.add(name)
        node = graph_nodes[name]
        visit_node(node, "graph")
        pending.extend(i.lstrip("^").split(":")[0] for i in node.input)

    kernel_ops = [op for op in sorted(counts) if op not in library and op not in _NO_KERNEL_NEEDED]
    devices = _kernel_devices(op for op in kernel_ops if op != "XlaCallModule")
    if devices is None:
        report.kernels_checked = False
        warnings.warn(
            "keras_lsrec.serving.check: this TensorFlow build does not expose its kernel registry "
            "(TF_GetRegisteredKernelsForOp of its C API), so ops without a GPU kernel were not looked for; "
            "the XlaCallModule and CPU-pinning checks still ran.",
            RuntimeWarning,
            stacklevel=2,
        )
    for op in kernel_ops:
        if op == "XlaCallModule":
            report.problems.append(
                "XlaCallModule found: a jax-compiled graph for one platform, not portable to GPU"
            )
        elif devices is not None and not devices[op] & {"GPU", "DEFAULT"}:
            report.problems.append(f"op {op} has no GPU kernel (kernels: {sorted(devices[op]) or 'none'})")
    report.ops = dict(sorted(counts.items()))
    if report.problems and raise_on_error:
        problems = "\n- ".join(report.problems)
        raise ServingCheckError(f"{path} [{signature}] would not load or run on a GPU server:\n- {problems}")
    return report
