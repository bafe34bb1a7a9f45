"""What is wrong with a `.keras` file, said before Keras reads it (internal).

Keras reports a truncated or garbage `.keras` file as "File not found"
(TF 2.21, Keras 3.15) although the file exists; `check_keras_file` names the
file and the actual problem instead.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib

from keras_lsrec.data.schema import SequenceSchema

# What `model.save("name.keras")` writes into the zip archive.
REQUIRED_MEMBERS = ("metadata.json", "config.json")
WEIGHTS_MEMBERS = ("model.weights.h5", "model.weights.npz")


def keras_file_path_problem(path: str) -> str | None:
    """What makes `path` not even a candidate `.keras` file (missing, a directory,
    another suffix), in words; None when it is one. The file is not read."""
    if os.path.isdir(path):
        return f"{path} is a directory, not a .keras file (a model saved with `model.save('name.keras')`)"
    if not os.path.exists(path):
        return f"{path}: no such file"
    if not path.endswith(".keras"):
        return f"{path} is not a .keras file (a model saved with `model.save('name.keras')`)"
    return None


def check_keras_file(path: str) -> None:
    """Raises naming `path` when it is not a readable `.keras` file.

    Checked: the path (`FileNotFoundError` when missing, `IsADirectoryError`
    for a directory, `ValueError` for another suffix), then the content
    (`ValueError`): a zip archive (a truncated file is not: its directory is
    at the end), holding `metadata.json`, `config.json` (valid JSON) and the
    weights, every member intact (CRC-checked, so the whole file is read).
    """
    problem = keras_file_path_problem(path)
    if problem is not None:
        if os.path.isdir(path):
            raise IsADirectoryError(problem)
        if not os.path.exists(path):
            raise FileNotFoundError(problem)
        raise ValueError(problem)
    size = os.path.getsize(path)
    invalid = f"{path} is not a valid .keras file ({size} bytes)"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{invalid}: not a zip archive (truncated, or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in REQUIRED_MEMBERS if m not in names]
            if not any(m in names for m in WEIGHTS_MEMBERS):
                missing.append(WEIGHTS_MEMBERS[0])
            if missing:
                raise ValueError(f"{invalid}: the archive has no {', '.join(missing)}")
            corrupt = archive.testzip()
            if corrupt is not None:
                raise ValueError(f"{invalid}: member {corrupt} is corrupt (CRC mismatch)")
            try:
                json.loads(archive.read("config.json"))
            except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
                raise ValueError(f"{invalid}: config.json is not valid JSON ({error})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise ValueError(f"{invalid}: {error}") from None


def read_schema(path: str) -> SequenceSchema | None:
    """The `SequenceSchema` recorded in the `.keras` file at `path` (its
    `config.json`, without loading the model), or None when the file records
    none that can be read (a model of another library; Keras then reports it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return SequenceSchema.from_config(config["config"]["schema"])
    except Exception:  # anything unexpected: the export subprocess checks against the loaded model
        return None
