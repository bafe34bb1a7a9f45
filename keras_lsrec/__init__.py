"""keras_lsrec: long user-behaviour sequence models for CTR prediction on Keras 3."""

from keras_lsrec import _quiet

# The `lsrec` command only (keras_lsrec/_quiet.py): TensorFlow's start-up lines are off unless
# --verbose, which must be decided before keras, and with it tensorflow, is imported below.
_quiet.quiet_start()

from keras_lsrec import data, distribution, layers, losses, metrics, models  # noqa: E402

__version__ = "0.1.0"

__all__ = ["data", "distribution", "layers", "losses", "metrics", "models", "__version__"]
