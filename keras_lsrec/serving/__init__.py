"""From a trained model to TF Serving: versioned SavedModel export, a GPU check, a client.

This package needs tensorflow and tensorflow-serving-api (the `serving`
extra); it is the one part of the library that is tensorflow-specific, since
TF Serving runs TensorFlow graphs. Models trained on any backend export.
Without the extra, `export`, `update_model_config` and a gRPC `Client` raise
`ImportError` naming the missing package and `pip install "keras-lsrec[serving]"`,
before anything is written; `require_serving(purpose)` is that check, for
code that wants to refuse early (a sweep that exports its best model).
"""

from keras_lsrec.serving._dependencies import require_serving
from keras_lsrec.serving.check import CheckReport, ServingCheckError, check
from keras_lsrec.serving.client import Client, ServingError
from keras_lsrec.serving.export import export, update_model_config

__all__ = [
    "CheckReport",
    "Client",
    "ServingCheckError",
    "ServingError",
    "check",
    "export",
    "require_serving",
    "update_model_config",
]
