"""Versioned SavedModels for TF Serving, built under the tensorflow backend from any backend."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras

from keras_lsrec.serving._dependencies import require_serving
from keras_lsrec.serving.check import check

CONFIG_FILE = "models.config"


def _next_version(base_dir: str) -> int:
    versions = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    return max(versions, default=0) + 1


def export(
    model: keras.Model | str,
    base_dir: str | None = None,
    version: int | None = None,
    serving_root: str = "/models",
    check_gpu: bool = True,
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

    Returns:
        The path of the version directory.

    Raises:
        ImportError: tensorflow or tensorflow-serving-api is not installed
            (checked first, before anything is written); the message names
            the package and `pip install "keras-lsrec[serving]"`.
    """
    require_serving("`keras_lsrec.serving.export`")
    if isinstance(model, str):
        if not model.endswith(".keras") or not os.path.isfile(model):
            raise ValueError(f"`model` must be a Keras model or an existing .keras file. Received: {model!r}")
        name = os.path.splitext(os.path.basename(model))[0]
    else:
        if not hasattr(model, "schema"):
            raise ValueError(
                f"`model` must be a keras_lsrec model (with a schema). Received: {type(model).__name__}"
            )
        name = model.name
    base_dir = base_dir or os.path.join("saved_models", name.lower())
    name = os.path.basename(os.path.normpath(base_dir))
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ValueError(f"The model directory name {name!r} is not a valid TF Serving model name.")
    os.makedirs(base_dir, exist_ok=True)
    version = _next_version(base_dir) if version is None else version
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be a positive integer. Received: `version={version!r}`")
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"Version {version} already exists: {final}")

    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base_dir)
    try:
        target = os.path.join(staging, "model")
        if not isinstance(model, str) and keras.backend.backend() == "tensorflow":
            from keras_lsrec.serving import _tf_export

            _tf_export.write(model, target, name)
        else:
            model_file = model if isinstance(model, str) else os.path.join(staging, "model.keras")
            if not isinstance(model, str):
                model.save(model_file)
            _export_in_tensorflow(model_file, target, name)
        if check_gpu:
            check(target)
        os.rename(target, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    update_model_config(
        os.path.join(os.path.dirname(os.path.abspath(base_dir)), CONFIG_FILE), name, serving_root
    )
    return final


def _export_in_tensorflow(model_file: str, target: str, name: str) -> None:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "keras_lsrec.serving._tf_export", model_file, target, name],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"Export under the tensorflow backend failed:\n{tail}")


def update_model_config(path: str, name: str, serving_root: str = "/models") -> None:
    """Adds (or keeps) model `name` in the TF Serving config file at `path`."""
    require_serving("`keras_lsrec.serving.update_model_config`", ("tensorflow_serving",))
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path) as f:
            text_format.Parse(f.read(), config)
    entries = config.model_config_list.config
    entry = next((c for c in entries if c.name == name), None) or entries.add()
    entry.name = name
    entry.base_path = f"{serving_root.rstrip('/')}/{name}"
    entry.model_platform = "tensorflow"
    staging = f"{path}.tmp-{os.getpid()}"
    with open(staging, "w") as f:
        f.write(text_format.MessageToString(config))
    os.replace(staging, path)
