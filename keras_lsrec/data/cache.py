"""`prepare`: a protocol's splits cached on disk, never deleting what the cache did not write.

Layout of a cache directory:

    <cache_dir>/.keras_lsrec_cache     the marker: prepare owns this directory
    <cache_dir>/<key>/                 one entry per source content, loader, protocol and arguments
        manifest.json                  what the entry is, and every file in it (size, SHA-256)
        sequences/ train/ validation/ test/
    <cache_dir>/.staging-<host>-<pid>-<uuid>/   an entry being written (renamed to <key> when whole)

Rules:

- prepare works only in a directory it created or marked: a new or empty
  directory gets the marker; a non-empty directory without it is refused
  (it may hold the source file, or anything else), never cleared;
- it deletes only its own files: those listed in an entry's manifest (or,
  when a manifest is unreadable, files named as prepare names them), then
  the folders this leaves empty; anything else in a folder stays;
- every call writes a staging folder of its own and renames it into place,
  so no reader sees half an entry and concurrent calls never share one;
  that folder is created before the loader runs, so a directory prepare
  cannot write fails at once (an `OSError` naming it), not after the
  loader and the protocol; a cache whose entry is built is read without writing;
- an entry whose files do not match its manifest (a missing or truncated
  file, a file that does not load; with `verify=True` also a changed
  checksum) is rebuilt, with a warning;
- the key is the source file's SHA-256 and size, the loader's and the
  protocol's identity (module and qualified name; for a lambda or a local
  function also its code and the values it closes over; for a
  `functools.partial` its function and arguments) and every argument.
  Editing the source file supersedes its old entry, which is removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import types
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from keras_lsrec.data.dataset import SequenceDataset
from keras_lsrec.validation import check_flag

CACHE_FORMAT = 2
MARKER = ".keras_lsrec_cache"
MANIFEST = "manifest.json"
TEMPORARY = re.compile(r"\.(staging|trash)-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{32}")
OWN_FILE = re.compile(r"manifest\.json|dataset\.json|offsets\.npy|(sequence|example)_\w+\.npy")
MAX_RECORDED = 10_000  # characters of a recorded value; a larger one is recorded by its SHA-256


def file_sha256(path: str, block: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(
    path: str | os.PathLike[str],
    load: Callable[..., Any],
    protocol: Callable[..., dict[str, SequenceDataset]],
    cache_dir: str | os.PathLike[str],
    load_args: dict[str, Any] | None = None,
    protocol_args: dict[str, Any] | None = None,
    *,
    verify: bool = False,
) -> dict[str, SequenceDataset]:
    """`protocol(load(path, **load_args), **protocol_args)`, cached on disk.

    The first call runs the loader and the protocol and writes the splits
    (sharing one copy of the sequences) with a manifest; a later call with
    the same file content and the same loader, protocol and arguments reads
    them back memory-mapped. Any change builds a new entry. The rules (what
    is deleted, concurrency, damaged entries, the key) are those of
    `keras_lsrec.data.cache`:

    - `cache_dir` must be new, empty, or a directory `prepare` created
      (it holds a `.keras_lsrec_cache` marker); a non-empty directory of
      other files is refused with a `ValueError`, never cleared; one it
      cannot write is refused (`PermissionError` / `OSError` naming it)
      before the loader runs;
    - `load` and `protocol` are functions (a lambda or a local function is
      keyed also by its code and the values it closes over) or
      `functools.partial`s of one; arguments must be JSON-like values
      (numbers, strings, lists, dicts, arrays), which the manifest records.

    Args:
        verify: also compare every cached file's SHA-256 with the manifest
            before using it (reads the whole entry; sizes are always checked).

    Example:

    >>> splits = prepare("UserBehavior.csv", load_taobao, dare_protocol, "cache/taobao",
    ...                  load_args={"behaviors": ["pv"]}, protocol_args={"seed": 1})
    """
    path, cache_dir = os.fspath(path), os.fspath(cache_dir)
    if not os.path.isfile(path):
        raise ValueError(f"No such file: path={path!r}")
    if not cache_dir:
        raise ValueError("`cache_dir` must name a directory. Received: `cache_dir=''`")
    for name, arguments in (("load_args", load_args), ("protocol_args", protocol_args)):
        if arguments is not None and not isinstance(arguments, Mapping):
            raise ValueError(
                f"`{name}` must be a dict of keyword arguments or None. Received: `{name}={arguments!r}`"
            )
    verify = check_flag("verify", verify)
    load_args, protocol_args = dict(load_args or {}), dict(protocol_args or {})
    identity = {
        "format": CACHE_FORMAT,
        "source": {"size": os.path.getsize(path), "sha256": file_sha256(path)},
        "loader": callable_identity(load, "load"),
        "load_args": recordable(load_args, "load_args"),
        "protocol": callable_identity(protocol, "protocol"),
        "protocol_args": recordable(protocol_args, "protocol_args"),
    }
    key = hashlib.sha256(_canonical(identity).encode()).hexdigest()[:24]
    _claim(cache_dir)
    _remove_abandoned(cache_dir)
    entry = os.path.join(cache_dir, key)
    cached = _read_entry(entry, identity, verify)
    if isinstance(cached, dict):
        return cached
    staging = _staging(cache_dir)  # now: an unwritable directory fails before the loader runs
    try:
        splits = protocol(load(path, **load_args), **protocol_args)
        if not isinstance(splits, Mapping) or not all(
            isinstance(s, SequenceDataset) for s in splits.values()
        ):
            raise ValueError(
                f"`protocol` must return a dict of SequenceDataset (as `dare_protocol` does). "
                f"Received: {type(splits).__name__}"
            )
        manifest = {**identity, "source": {**identity["source"], "path": os.path.abspath(path)}, "key": key}
        _write_entry(cache_dir, staging, entry, dict(splits), manifest, damaged=cached == "damaged")
    finally:
        if os.path.isdir(staging):  # not renamed: failed, or another call's entry was kept
            _remove_own(staging)
    _remove_superseded(cache_dir, manifest)
    return dict(splits)


# ----------------------------------------------------------------- identity of the inputs
def callable_identity(function: Any, name: str) -> dict[str, Any]:
    """What keys a loader or protocol: module and qualified name, plus, where a name does not identify
    the code (a lambda, a local function, a function of `__main__`), the code and the values it
    closes over; for a `functools.partial`, its function and arguments. Other callables are refused."""
    if isinstance(function, functools.partial):
        return {
            "partial": callable_identity(function.func, name),
            "args": recordable(list(function.args), f"{name}.args"),
            "keywords": recordable(dict(function.keywords), f"{name}.keywords"),
        }
    owner = None
    if isinstance(function, types.MethodType):
        if not isinstance(function.__self__, type):
            raise TypeError(_unkeyable(name, function))
        owner, function = function.__self__, function.__func__
    if not isinstance(function, (types.FunctionType, types.BuiltinFunctionType)):
        raise TypeError(_unkeyable(name, function))
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    if not module or not qualname:
        raise TypeError(_unkeyable(name, function))
    identity: dict[str, Any] = {"function": f"{module}.{qualname}"}
    if owner is not None:
        identity["class"] = f"{owner.__module__}.{owner.__qualname__}"
    if isinstance(function, types.FunctionType) and ("<" in qualname or module == "__main__"):
        code = function.__code__
        identity["code"] = _code_fingerprint(code)
        cells = function.__closure__ or ()
        identity["closure"] = {
            var: _cell_value(cell, f"{name} closure `{var}`")
            for var, cell in zip(code.co_freevars, cells, strict=True)
        }
        identity["defaults"] = recordable(function.__defaults__ or (), f"{name} defaults", strict=False)
        identity["kwdefaults"] = recordable(function.__kwdefaults__ or {}, f"{name} defaults", strict=False)
    return identity


def _unkeyable(name: str, function: Any) -> str:
    return (
        f"`{name}` must be a function or a functools.partial of one, so that the cache can tell "
        f"one from another. Received {type(function).__name__}: {function!r}. Wrap it in a function."
    )


def _cell_value(cell: Any, name: str) -> Any:
    try:
        value = cell.cell_contents
    except ValueError:  # a cell not filled yet
        return None
    return recordable(value, name, strict=False)


def _code_fingerprint(code: types.CodeType) -> str:
    """SHA-256 of what the code does (instructions, names, constants), not where it is written."""
    digest = hashlib.sha256()
    for part in (code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()):
        digest.update(part)
    for constant in code.co_consts:
        digest.update(_constant(constant).encode())
    return digest.hexdigest()


def _constant(value: Any) -> str:
    """A code constant as stable text (a frozenset's order depends on the process's hash seed)."""
    if isinstance(value, types.CodeType):
        return "code:" + _code_fingerprint(value)
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_constant(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_constant(v) for v in value) + ")"
    return repr(value)


def recordable(value: Any, name: str, strict: bool = True) -> Any:
    """`value` as JSON for the manifest: numbers, strings, lists, dicts; numpy values and arrays
    (by dtype, shape and SHA-256); callables by identity; paths as text. Anything else is a
    `TypeError` naming it (`strict`), or, for values a local function closes over, its type."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return recordable(value.item(), name, strict)
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        content = repr(data.tolist()).encode() if data.dtype.hasobject else data.tobytes()
        digest = hashlib.sha256(content).hexdigest()
        return {"array": str(value.dtype), "shape": list(value.shape), "sha256": digest}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return _bounded([recordable(v, f"{name}[{i}]", strict) for i, v in enumerate(value)])
    if isinstance(value, (set, frozenset)):
        return _bounded(sorted((recordable(v, name, strict) for v in value), key=_canonical))
    if isinstance(value, Mapping):
        return _bounded({str(k): recordable(v, f"{name}[{k!r}]", strict) for k, v in value.items()})
    if callable(value) and not isinstance(value, type):
        try:
            return {"callable": callable_identity(value, name)}
        except TypeError:
            if strict:
                raise
    if isinstance(value, types.ModuleType):
        return {"module": value.__name__}
    if isinstance(value, type):
        return {"class": f"{value.__module__}.{value.__qualname__}"}
    if strict:
        raise TypeError(
            f"`{name}` cannot be recorded in the cache manifest: {type(value).__name__} {value!r}. "
            "Pass JSON-like values (numbers, strings, lists, dicts, numpy arrays)."
        )
    return {"object": f"{type(value).__module__}.{type(value).__qualname__}"}


def _bounded(value: Any) -> Any:
    text = _canonical(value)
    return value if len(text) <= MAX_RECORDED else {"sha256": hashlib.sha256(text.encode()).hexdigest()}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ----------------------------------------------------------------- the directory
def _unwritable(cache_dir: str, error: OSError) -> OSError:
    """`error` (same type: `PermissionError`, ...) with a message naming `cache_dir`."""
    return type(error)(
        error.errno,
        f"`cache_dir={cache_dir!r}` is not writable ({error.strerror}: {error.filename!r}). prepare "
        "writes the splits there and checks this before loading anything: pass a directory you can "
        "write to (a cache whose entries are all built is read without writing).",
    )


def _claim(cache_dir: str) -> None:
    """Makes sure `cache_dir` is ours: new or empty (then marked), or already marked."""
    if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise ValueError(f"`cache_dir={cache_dir!r}` is a file, not a directory.")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as error:
        raise _unwritable(cache_dir, error) from error
    marker = os.path.join(cache_dir, MARKER)
    if os.path.isfile(marker):
        return
    others = sorted(n for n in os.listdir(cache_dir) if n != MARKER)
    if others and not os.path.isfile(marker):  # (a concurrent call may have marked it meanwhile)
        old = MANIFEST in others and _old_format(os.path.join(cache_dir, MANIFEST))
        hint = (
            "It looks like a cache of an older keras_lsrec: delete it yourself, or pass another `cache_dir`."
            if old
            else "Pass a new or empty directory as `cache_dir` (e.g. a sub-directory of this one)."
        )
        raise ValueError(
            f"`cache_dir={cache_dir!r}` is not empty and was not created by `prepare` (no {MARKER} "
            f"file); it holds {others[:5]}{' ...' if len(others) > 5 else ''}. prepare never deletes "
            f"files it did not write, so it refuses to use this directory. {hint}"
        )
    try:
        descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    except OSError as error:
        raise _unwritable(cache_dir, error) from error
    with os.fdopen(descriptor, "w") as handle:
        handle.write("A cache of keras_lsrec.data.prepare, which deletes only the files it wrote.\n")


def _old_format(manifest: str) -> bool:
    try:
        with open(manifest) as handle:
            return json.load(handle).get("format") == 1
    except (OSError, ValueError, AttributeError):
        return False


def _remove_abandoned(cache_dir: str) -> None:
    """Staging and trash folders of this host's processes that died before removing them."""
    host = socket.gethostname()
    for name in os.listdir(cache_dir):
        match = TEMPORARY.fullmatch(name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            try:
                _remove_own(os.path.join(cache_dir, name))
            except OSError as error:  # a read-only cache: its built entries can still be read
                warnings.warn(f"prepare could not remove {name} from {cache_dir}: {error}", stacklevel=3)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # cannot tell: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_own(folder: str, files: Mapping[str, Any] | None = None) -> None:
    """Deletes the files prepare wrote under `folder` (those listed, when the manifest is known;
    otherwise those named as prepare names them), then every folder this leaves empty."""
    if not os.path.isdir(folder):
        return
    for root, _, names in os.walk(folder, topdown=False):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            if files is not None:
                ours = relative in files or relative == MANIFEST
            else:
                ours = OWN_FILE.fullmatch(name) is not None
            if ours:
                os.remove(os.path.join(root, name))
        try:
            os.rmdir(root)
        except OSError:
            pass  # it holds something prepare did not write: it stays
    if os.path.exists(folder):
        warnings.warn(f"prepare left {folder} in place: it holds files prepare did not write.", stacklevel=3)


# ----------------------------------------------------------------- entries
def _read_entry(entry: str, identity: dict[str, Any], verify: bool) -> dict[str, SequenceDataset] | str:
    """The cached splits; `"missing"`; or `"damaged"` (with a warning) when the entry does not match
    its manifest or does not load."""
    if not os.path.isdir(entry):
        return "missing"
    try:
        with open(os.path.join(entry, MANIFEST)) as handle:
            manifest = json.load(handle)
        recorded = {**manifest, "source": {k: v for k, v in manifest["source"].items() if k != "path"}}
        if {k: recorded.get(k) for k in identity} != identity:
            raise ValueError("its manifest describes other data")
        for relative, record in manifest["files"].items():
            file = os.path.join(entry, *relative.split("/"))
            size = os.path.getsize(file) if os.path.isfile(file) else None
            if size != record["size"]:
                raise ValueError(f"{relative} has {size} bytes, the manifest says {record['size']}")
            if verify and file_sha256(file) != record["sha256"]:
                raise ValueError(f"{relative} does not match its SHA-256 in the manifest")
        return {split: SequenceDataset.load(os.path.join(entry, split)) for split in manifest["splits"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as error:
        warnings.warn(f"prepare: the cache entry {entry} is damaged ({error}); rebuilding it.", stacklevel=3)
        return "damaged"


def _staging(cache_dir: str) -> str:
    """A new staging folder of this call in `cache_dir`, or the `OSError` of an unwritable
    directory, with a message naming it."""
    staging = _temporary(cache_dir, "staging")
    try:
        os.mkdir(staging)
    except OSError as error:
        raise _unwritable(cache_dir, error) from error
    return staging


def _write_entry(
    cache_dir: str,
    staging: str,
    entry: str,
    splits: dict[str, SequenceDataset],
    manifest: dict[str, Any],
    damaged: bool,
) -> None:
    """Writes the entry in `staging` (a folder of this call, see `_staging`), then renames it into
    place; the caller removes `staging` when it is still there (not renamed)."""
    first = next(iter(splits.values()), None)
    shared = first is not None and all(_same_sequences(first, s) for s in splits.values())
    for split, dataset in splits.items():
        folder = os.path.join(staging, split)
        dataset.save(folder, sequences_dir=os.path.join(staging, "sequences") if shared else None)
    files = {}
    for root, _, names in os.walk(staging):
        for name in names:
            file = os.path.join(root, name)
            relative = os.path.relpath(file, staging).replace(os.sep, "/")
            files[relative] = {"size": os.path.getsize(file), "sha256": file_sha256(file)}
    with open(os.path.join(staging, MANIFEST), "w") as handle:
        json.dump({**manifest, "splits": list(splits), "files": files}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    if damaged and os.path.isdir(entry):
        trash = _temporary(cache_dir, "trash")
        try:
            os.rename(entry, trash)
        except OSError:
            trash = ""
        if trash:
            _remove_own(trash, _listed_files(trash))
    try:
        os.rename(staging, entry)
    except OSError:
        if not os.path.isdir(entry):
            raise
        # Another call installed this entry meanwhile (same key, same content): keep theirs.


def _temporary(cache_dir: str, kind: str) -> str:
    return os.path.join(cache_dir, f".{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")


def _same_sequences(a: SequenceDataset, b: SequenceDataset) -> bool:
    arrays_a, arrays_b = a._stored()[1], b._stored()[1]  # sequences, item tables, actions, labels
    return (
        a.offsets is b.offsets
        and arrays_a.keys() == arrays_b.keys()
        and all(arrays_a[name] is arrays_b[name] for name in arrays_a)
    )


def _listed_files(entry: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(entry, MANIFEST)) as handle:
            files = json.load(handle)["files"]
        return files if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_superseded(cache_dir: str, manifest: dict[str, Any]) -> None:
    """Entries built from an earlier content of the same source file with the same loader,
    protocol and arguments: the file has changed, they can never be used again."""
    same = ("loader", "load_args", "protocol", "protocol_args", "format")
    for name in os.listdir(cache_dir):
        folder = os.path.join(cache_dir, name)
        if name.startswith(".") or name == manifest["key"] or not os.path.isdir(folder):
            continue
        try:
            with open(os.path.join(folder, MANIFEST)) as handle:
                other = json.load(handle)
            superseded = other["source"]["path"] == manifest["source"]["path"] and all(
                other.get(k) == manifest[k] for k in same
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if superseded:
            _remove_own(folder, other.get("files"))
