"""The serving extra's packages, checked before any work (internal)."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = 'pip install "keras-lsrec[serving]"'

# module -> the pip package that provides it (all installed by the serving extra)
PIP_NAMES = {"tensorflow": "tensorflow", "tensorflow_serving": "tensorflow-serving-api", "grpc": "grpcio"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # imported, but without a spec (an interactive stand-in): present
        return True


def require_serving(purpose: str, modules: tuple[str, ...] = ("tensorflow", "tensorflow_serving")) -> None:
    """Raises `ImportError` naming the missing pip packages and the extra that installs them.

    `purpose` says what needs them ("`keras_lsrec.serving.export`").
    """
    missing = [module for module in modules if not _installed(module)]
    if missing:
        packages = " and ".join(PIP_NAMES.get(module, module) for module in missing)
        verb = "are" if len(missing) > 1 else "is"
        raise ImportError(
            f"{purpose} needs {packages}, which {verb} not installed. Install the serving extra: "
            f"{INSTALL_HINT}",
            name=missing[0],
        )
