"""Schema, batch format and data generators."""

from keras_lsrec.data import synthetic
from keras_lsrec.data.schema import SequenceSchema, pad_histories

__all__ = ["SequenceSchema", "pad_histories", "synthetic"]
