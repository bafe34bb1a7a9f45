"""keras_lsrec: long user-behaviour sequence models for CTR prediction on Keras 3."""

from keras_lsrec import data, distribution, layers, losses, metrics, models

__version__ = "0.1.0"

__all__ = ["data", "distribution", "layers", "losses", "metrics", "models", "__version__"]
