"""The `lsrec` command's quiet start (internal; standard library only, imported before keras).

`keras_lsrec/__init__.py` calls `quiet_start()` before it imports keras, so
before the tensorflow backend imports tensorflow: when this process is the
`lsrec` command (`lsrec ...` or `python -m keras_lsrec.cli ...`) and
`--verbose` is not among its arguments, TensorFlow's start-up lines are off
from the first import on (`configure_logging`). Any other process importing
the package is left as it is: a library does not silence its user's logs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator

COMMAND = "lsrec"
MODULE = "keras_lsrec.cli"

RETRACING = "triggered tf.function retracing"


class _DropRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null for the block (C++ writes included)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def configure_logging(verbose: bool) -> None:
    """Turns TensorFlow's logs off for this process unless `verbose`; call before tensorflow is imported.

    - `TF_CPP_MIN_LOG_LEVEL=3` (unless the user set it) silences the C++ logs
      TensorFlow writes once it runs (CUDA probing, data pipeline notices);
    - tensorflow is imported with stderr discarded when it is installed and
      not imported yet: the messages it prints while loading (oneDNN, CUDA
      stubs, CPU features) come before absl logging is initialised and ignore
      `TF_CPP_MIN_LOG_LEVEL` (TF 2.21). Every command imports it anyway
      (`keras.utils.set_random_seed` seeds it, export needs it); a real import
      error is raised again, visibly, by the next import;
    - absl's verbosity and the "tensorflow" logger go to ERROR, and the
      tf.function retracing warnings are dropped.

    Only the first import is affected: when tensorflow is already loaded,
    its start-up messages are already out. That is why the `lsrec` command
    calls this from `import keras_lsrec` (`quiet_start`), before the
    package imports keras.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is not None:
        with _stderr_discarded():
            with contextlib.suppress(Exception):  # a broken install: the next import shows why
                import tensorflow  # noqa: F401
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.setLevel(logging.ERROR)
    if not any(isinstance(f, _DropRetracing) for f in tf_logger.filters):
        tf_logger.addFilter(_DropRetracing())
    warnings.filterwarnings("ignore", message=f".*{RETRACING}")


def command_arguments() -> list[str] | None:
    """The arguments given to `lsrec` when this process runs the command, else None.

    `lsrec ARGS` (the console script: `sys.argv[0]` is `lsrec`, `lsrec.exe` or
    `lsrec-script.py`) or `python -m keras_lsrec.cli ARGS` (while Python locates
    the module and imports its package, `sys.argv[0]` is `"-m"`).
    """
    argv = list(sys.argv)
    if not argv:
        return None
    if argv[0] == "-m":
        original = [str(a) for a in getattr(sys, "orig_argv", ())]
        if MODULE in original or f"-m{MODULE}" in original:
            return argv[1:]
        return None
    name = re.split(r"[\\/]", argv[0])[-1]  # either separator: the path may be a Windows one
    script = re.sub(r"(-script\.pyw?|\.exe)$", "", name.lower())
    return argv[1:] if script == COMMAND else None


def asks_verbose(arguments: list[str]) -> bool:
    """Whether `--verbose` (or an abbreviation argparse accepts, `--verb`...) is among `arguments`."""
    for argument in arguments:
        if argument == "--":
            break
        if argument.startswith("--verb") and "--verbose".startswith(argument):
            return True
    return False


def quiet_start() -> None:
    """`configure_logging` for the `lsrec` command, before anything imports tensorflow; else nothing."""
    arguments = command_arguments()
    if arguments is not None:
        configure_logging(asks_verbose(arguments))
