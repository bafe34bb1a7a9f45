"""Versioned SavedModels for TF Serving, built under the tensorflow backend from any backend."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import keras

from keras_lsrec.serving import _item_tables
from keras_lsrec.serving._dependencies import require_serving
from keras_lsrec.serving._model_file import check_keras_file, read_schema
from keras_lsrec.serving._tf_export import CANNOT_LOAD, REFUSED
from keras_lsrec.serving.check import check
from keras_lsrec.validation import check_flag, check_integer

CONFIG_FILE = "models.config"


def _next_version(base_dir: str) -> int:
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    return max(versions, default=0) + 1


def export(
    model: keras.Model | str | os.PathLike[str],
    base_dir: str | None = None,
    version: int | None = None,
    serving_root: str = "/models",
    check_gpu: bool = True,
    item_tables: Mapping[str, Any] | None = None,
) -> str:
    """Exports `model` as `<base_dir>/<version>/`, a SavedModel for TF Serving.

    The graph is always built by the tensorflow backend from the model's
    `.keras` file: in this process when the backend is tensorflow, otherwise
    in a `KERAS_BACKEND=tensorflow` subprocess (jax exports an
    `XlaCallModule` pinned to the CPU and torch cannot export dict inputs, so
    neither could run on TF Serving's GPU build).

    The directory holds
    - signature `serving_default`: the batch format by name, int64 ids of
      dynamic batch size and history length, returning
      `{"probability": (B,) float32}`; ids outside `[0, vocabulary)` or
      histories of unequal shapes fail the request with an error naming the
      field. `serving_int32` is the same for int32 clients;
    - `assets.extra/tf_serving_warmup_requests`: PredictionLog records (batches
      of 1 and 64 at `max_len`) that TF Serving replays before serving.

    With `item_tables`, the SavedModel holds those item features' tables
    (non-trainable variables) and its signatures take the ids only for them:
    no `target_<f>` / `history_<f>` input for a held feature `f`; the graph
    gathers them by `target_item` / `history_item`, zeros at padding and at
    missing candidates (id 0). A new version exported with new tables
    replaces them, without retraining. Clients say which features the server
    holds: `Client(..., held_item_features=("image_emb",))`.

    The version directory is written under a temporary name in `base_dir`
    and renamed when complete, so TF Serving never sees half a model.
    `<parent of base_dir>/models.config` (TF Serving's `--model_config_file`)
    gains or keeps an entry `name: <basename of base_dir>`,
    `base_path: <serving_root>/<name>`.

    Args:
        model: a `keras_lsrec` model, or the path of its `.keras` file.
        base_dir: the model's directory; default `saved_models/<model name>`.
        version: the version number; default: one above the highest present.
        serving_root: where `base_dir`'s parent is mounted in the server.
        check_gpu: run `check()` on the result before publishing it (and
            refuse a graph that could not run on a GPU server).
        item_tables: `{item feature name: table}` to hold in the SavedModel,
            a table having one row per item id (at least
            `schema.vocab_sizes["item"]` rows) of the feature's width (`D`
            floats, or a bag of `M` ids padded with 0), as
            `SyntheticData.item_tables` or a `SequenceDataset`'s. Checked
            before anything is written: a `ValueError` names the table and
            the bad value (an unknown feature, too few rows, a wrong width,
            NaN/inf, an id outside the feature's vocabulary).

    Returns:
        The path of the version directory.

    Raises:
        ImportError: tensorflow or tensorflow-serving-api is not installed
            (checked first, before anything is written); the message names
            the package and `pip install "keras-lsrec[serving]"`.
    """
    require_serving("`keras_lsrec.serving.export`")
    # Every argument before the work (numpy integers as Python's; a path as a string).
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if version is not None:
        version = check_integer("version", version, 1, requirement="a positive integer")
    check_gpu = check_flag("check_gpu", check_gpu)
    if not isinstance(serving_root, str) or not serving_root:
        raise ValueError(
            f"`serving_root` must be the path where the models are mounted in the server. "
            f"Received: `serving_root={serving_root!r}`"
        )
    if isinstance(model, str):
        check_keras_file(model)
        name = os.path.splitext(os.path.basename(model))[0]
        schema = read_schema(model)
    else:
        if not hasattr(model, "schema"):
            raise ValueError(
                f"`model` must be a keras_lsrec model (with a schema). Received: {type(model).__name__}"
            )
        name = model.name
        schema = model.schema
    tables: dict[str, Any] = {}
    if item_tables is not None:
        if schema is not None:
            tables = _item_tables.check_item_tables(schema, item_tables)
        elif not isinstance(item_tables, Mapping):  # (the schema is read, and the tables checked, below)
            raise ValueError(f"`item_tables` must be a dict. Received: {type(item_tables).__name__}")
        else:
            tables = {key: item_tables[key] for key in item_tables}
    base_dir = base_dir or os.path.join("saved_models", name.lower())
    name = os.path.basename(os.path.normpath(base_dir))
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"The model directory name {name!r} is not a valid TF Serving model name.")
    config_path = os.path.join(os.path.dirname(os.path.abspath(base_dir)), CONFIG_FILE)
    # Everything that could refuse the publication is checked before the (long) export.
    old_config, new_config = _config_text(config_path, name, serving_root)  # refuses a corrupt file
    if new_config != old_config:
        _require_writable(os.path.dirname(config_path), f"{CONFIG_FILE} is updated there")
    created = _make_dirs(base_dir)
    try:
        _require_writable(base_dir, "the version is written there")
        version = _next_version(base_dir) if version is None else version
        final = os.path.join(base_dir, str(version))
        if os.path.exists(final):
            raise FileExistsError(f"Version {version} already exists: {final}")
        staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_dir)
        try:
            target = os.path.join(staging, "model")
            if not isinstance(model, str) and keras.backend.backend() == "tensorflow":
                from keras_lsrec.serving import _tf_export

                _tf_export.write(model, target, name, item_tables=tables)
            else:
                model_file = model if isinstance(model, str) else os.path.join(staging, "model.keras")
                if not isinstance(model, str):
                    model.save(model_file)
                tables_file = None
                if tables:
                    tables_file = os.path.join(staging, "item_tables.npz")
                    _item_tables.save(tables_file, tables)
                _export_in_tensorflow(model_file, target, name, tables_file)
            if check_gpu:
                check(target)
            _publish(target, final, config_path, name, serving_root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        for directory in reversed(created):  # what this call created, if still empty
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        raise
    return final


def _make_dirs(path: str) -> list[str]:
    """`os.makedirs(path, exist_ok=True)`; returns the directories it created, outermost first."""
    missing = []
    head = os.path.abspath(path)
    while not os.path.exists(head):
        missing.append(head)
        head = os.path.dirname(head)
    os.makedirs(path, exist_ok=True)
    return missing[::-1]


def _require_writable(directory: str, why: str) -> None:
    """`PermissionError` naming `directory` (or, when it does not exist yet, the directory it would be
    created in) unless this process may create files there."""
    existing = os.path.abspath(directory)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write in {existing} ({why}): it is not writable")


def _publish(target: str, final: str, config_path: str, name: str, serving_root: str) -> None:
    """Makes the finished SavedModel `target` version `final` and enters `name` in `config_path`.

    Either both happen or neither: `models.config` is written first (only
    when the entry changes), then the version is renamed into place, the
    step that makes it visible; if that fails, the previous `models.config`
    is put back.
    """
    old, new = _config_text(config_path, name, serving_root)
    if new != old:
        _write_atomically(config_path, new)
    try:
        if os.path.exists(final):
            raise FileExistsError(f"Version {os.path.basename(final)} already exists: {final}")
        os.rename(target, final)
    except BaseException:
        if new != old:
            with contextlib.suppress(OSError):  # the error to report is the one above
                if old is None:
                    os.remove(config_path)
                else:
                    _write_atomically(config_path, old)
        raise


def _export_in_tensorflow(model_file: str, target: str, name: str, tables_file: str | None = None) -> None:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    tables = [tables_file] if tables_file else []
    proc = subprocess.run(
        [sys.executable, "-m", "keras_lsrec.serving._tf_export", model_file, target, name, *tables],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode in (CANNOT_LOAD, REFUSED):  # one line: what and why
        raise ValueError(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"Export under the tensorflow backend failed:\n{tail}")


def _read_model_config(path: str) -> Any:
    """The `ModelServerConfig` in TF Serving's config file at `path` (empty when it does not exist).

    Raises `ValueError` naming the file when it is not a valid text-format
    `ModelServerConfig` (a parse error, a file that is not text).
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        try:
            with open(path) as f:
                text_format.Parse(f.read(), config)
        except (text_format.ParseError, UnicodeDecodeError) as error:
            raise ValueError(
                f"{path} is not a valid TF Serving model config (text-format ModelServerConfig): {error}. "
                "Fix or remove it; nothing was written."
            ) from None
        except IsADirectoryError:
            raise ValueError(f"{path} is a directory, not a TF Serving model config file") from None
    return config


def _config_text(path: str, name: str, serving_root: str) -> tuple[str | None, str]:
    """`(the file's text or None, the text with model `name` entered)`; the file is parsed first."""
    from google.protobuf import text_format

    config = _read_model_config(path)
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    entries = config.model_config_list.config
    entry = next((c for c in entries if c.name == name), None) or entries.add()
    base_path = f"{serving_root.rstrip('/')}/{name}"
    if (entry.name, entry.base_path, entry.model_platform) == (name, base_path, "tensorflow"):
        return old, old if old is not None else text_format.MessageToString(config)
    entry.name = name
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    return old, text_format.MessageToString(config)


def _write_atomically(path: str, text: str) -> None:
    staging = f"{path}.tmp-{os.getpid()}"
    try:
        with open(staging, "w") as f:
            f.write(text)
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(staging)
        raise


def update_model_config(path: str, name: str, serving_root: str = "/models") -> None:
    """Adds (or keeps) model `name` in the TF Serving config file at `path`.

    The file is replaced atomically, and only when the entry changes; a file
    that does not parse is refused (`ValueError` naming it) and left as it is.
    """
    require_serving("`keras_lsrec.serving.update_model_config`", ("tensorflow_serving",))
    old, new = _config_text(path, name, serving_root)
    if new != old:
        _write_atomically(path, new)
