"""`Trainer`: how a keras_lsrec model trains; the models derive from it.

Keras' `Model` with the training hooks of the library in one class, so that
a model class (`keras_lsrec.models.SequenceModel`) is its graph and config
only, as a keras-hub backbone is. `fit`, `evaluate` and `predict` stay
Keras' own; the class adds, at their documented seams:

- input validation at every entry point (`fit`, `evaluate`, `predict` and
  their `*_on_batch` forms) against the model's `schema`
  (`keras_lsrec.training.inputs`);
- row-sparse training of large embedding tables (`compile`'s
  `table_optimizer`; `keras_lsrec.training.tables`), saved with the compile
  config so that a loaded `.keras` file resumes the same way;
- the train step of the running backend (`keras_lsrec.training.steps`, one
  file per backend, chosen once);
- one optional auxiliary click head (`keras_lsrec.training.AuxiliaryHead`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_lsrec.training import distributed, steps
from keras_lsrec.training.auxiliary import AuxiliaryHead
from keras_lsrec.training.inputs import check_batch, validated
from keras_lsrec.training.tables import DEFAULT_MIN_ROWS, TableTraining, save_slots_unpadded

_COMPILE = inspect.signature(keras.Model.compile)
_FIT = inspect.signature(keras.Model.fit)
_EVALUATE = inspect.signature(keras.Model.evaluate)
_PREDICT = inspect.signature(keras.Model.predict)


class Trainer(keras.Model):
    """A functional `keras.Model` that trains the keras_lsrec way.

    A subclass builds its graph and calls
    `super().__init__(inputs=..., outputs=..., auxiliary=...)`, and sets
    `schema` (a `keras_lsrec.data.SequenceSchema`): the entry points
    validate their input against it.

    Args:
        inputs, outputs: the functional graph (`keras.Model`'s).
        auxiliary: `(probability_tensor, weight)`: a second click head of the
            graph, trained by `weight * BCE(y, p_aux)` added to the compiled
            loss; in training the model returns `(prediction, p_aux)`, and
            `compute_loss` / `compute_metrics` take the pair apart.
            Prediction, evaluation and export see only the main output.
        **kwargs: `name`, `trainable`.
    """

    schema: Any

    def __init__(self, inputs: Any, outputs: Any, auxiliary: tuple[Any, float] | None = None, **kwargs: Any):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._auxiliary = None
        self._compile_options: dict[str, Any] = {}
        self._table_training: TableTraining | None = None
        if auxiliary is not None and auxiliary[1]:
            head = AuxiliaryHead(inputs, outputs, auxiliary[0], auxiliary[1])
            self._auxiliary = head
            # Track the head's own layers so their weights train, save and load.
            self.auxiliary_layers = head.own_layers(self.layers)

    @property
    def table_training(self) -> TableTraining | None:
        """The row-sparse table training of the last `compile` (`None` before):
        its `tables`, `rule` and `slots`; `active` when a table trains so."""
        return self._table_training

    # -- compile ---------------------------------------------------------------
    def compile(
        self,
        *args: Any,
        table_optimizer: Any = "auto",
        table_min_rows: int = DEFAULT_MIN_ROWS,
        **kwargs: Any,
    ) -> None:
        """`keras.Model.compile`, with embedding tables trained row-sparsely.

        A step then reads and writes only the rows its batch looks up, in each
        table and its optimizer slots, so its cost does not grow with the
        vocabulary (`keras_lsrec.training.tables`, docs/training.md).

        Args:
            *args: the arguments of `keras.Model.compile`.
            table_optimizer: how tables of at least `table_min_rows` rows
                train. `"auto"`: the compiled optimizer restricted to touched
                rows, following its learning rate (`Adam` -> lazy `RowAdam`,
                `Adagrad` -> `RowAdagrad`, `SGD` -> `RowSGD`; any other
                optimizer, or one with momentum, amsgrad, weight decay,
                clipping, EMA or gradient accumulation, trains tables densely,
                with a warning). A row rule (`keras_lsrec.training.RowAdam(0.01)`,
                `RowAdagrad`, `RowSGD`) gives tables their own optimizer and
                learning rate; the compiled optimizer's clipping or gradient
                accumulation does not apply to them. Under a `keras.distribution`
                (jax) tables train row-sparsely on their shards; under a
                `tf.distribute` strategy they train densely (with a warning).
                `"dense"` (or `None`): tables train like every other weight.
            table_min_rows: tables with fewer rows train densely (for them
                one pass over the table costs about what the row-sparse
                bookkeeping of a batch does; chosen by measurement,
                docs/benchmarks.md "Vocabulary").
            **kwargs: the keyword arguments of `keras.Model.compile`.
        """
        if keras.distribution.distribution() is not None:
            steps.check_distribution_backend()
        super().compile(*args, **kwargs)
        save_slots_unpadded(self, self.optimizer)
        self._table_training = TableTraining(self, table_optimizer, table_min_rows)
        # `jit_compile` as asked, not as Keras resolved it for this backend
        # ("auto" is XLA on jax, eager on torch): a file saved on jax then
        # resumes on torch without `torch.compile` recompiling every shape.
        requested = _COMPILE.bind_partial(self, *args, **kwargs).arguments.get("jit_compile", "auto")
        self._compile_options = {
            "table_optimizer": table_optimizer,
            "table_min_rows": table_min_rows,
            "jit_compile": requested,
        }

    def get_compile_config(self) -> dict[str, Any] | None:
        """Keras' compile config with the table options and `jit_compile` as
        asked, so that loading a `.keras` file compiles (and resumes) the same
        way, on any backend."""
        config = super().get_compile_config()
        if config is not None and self._compile_options:
            config.update(keras.saving.serialize_keras_object(self._compile_options))
        return config

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compiles a model loaded from `.keras` as it was saved (loss, metrics,
        optimizer, table training), so that loading restores the optimizer's
        state (table slots included) and training resumes where it stopped.
        (Keras skips this for models that override `compile`.)"""
        config = keras.saving.deserialize_keras_object(config)
        # A file saved before row-sparse tables existed trained them densely:
        # its optimizer state has dense moments for every table.
        config.setdefault("table_optimizer", "dense")
        self.compile(**config)

    # -- one step ----------------------------------------------------------------
    def train_step(self, *args: Any) -> Any:
        """The running backend's step (`keras_lsrec.training.steps`)."""
        return steps.train_step(self, self._table_training, super().train_step, *args)

    def call(self, inputs, training=None, mask=None):
        """The functional graph; with an auxiliary head, in training only,
        `(prediction, auxiliary_prediction)`."""
        if training and self._auxiliary is not None:
            return self._auxiliary(inputs)
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        auxiliary = None
        if isinstance(y_pred, (tuple, list)) and self._auxiliary is not None:
            y_pred, auxiliary = y_pred
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training and auxiliary is not None and y is not None:
            loss = loss + self._auxiliary.loss(y, auxiliary, loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, (tuple, list)) and self._auxiliary is not None:
            y_pred = y_pred[0]
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # -- early input validation ------------------------------------------------
    # Every entry point checks its input by name against the schema before
    # Keras sees it (`keras_lsrec.training.inputs`): a dict at once, a
    # PyDataset / tf.data.Dataset / generator batch by batch. A direct
    # `model(x)` call is not checked: it is also the traced path. Under a
    # `keras.distribution`, the model's placement and the batches' rows too
    # (`keras_lsrec.training.distributed`).
    def fit(self, x=None, y=None, *args, **kwargs):
        divisor = distributed.check_placement(self)
        bound = _FIT.bind_partial(self, x, y, *args, **kwargs)  # every argument by name, however passed
        arguments = bound.arguments
        batch_size = arguments.get("batch_size")
        split = arguments.get("validation_split") or 0.0
        validation = arguments.get("validation_data")
        validation_batch_size = arguments.get("validation_batch_size") or batch_size
        checked = validated(x, self.schema, y, divisor)
        if isinstance(x, Mapping) and split and isinstance(split, (int, float)):
            rows = len(x["target_item"])
            train_rows = int(np.floor(rows * (1.0 - split)))  # Keras' cut (`train_validation_split`)
            source = f"`x`'s training part (`validation_split={split}`)"
            distributed.check_batches({"target_item": range(train_rows)}, batch_size, divisor, source)
            validation_rows = {"target_item": range(rows - train_rows)}
            source = f"`x`'s validation part (`validation_split={split}`)"
            distributed.check_batches(validation_rows, validation_batch_size, divisor, source)
        else:
            distributed.check_batches(x, batch_size, divisor)
        arguments["x"] = checked
        if isinstance(validation, (tuple, list)) and validation:
            validated(validation[0], self.schema, validation[1] if len(validation) > 1 else None)
            distributed.check_batches(validation[0], validation_batch_size, divisor, "`validation_data`")
        elif validation is not None:
            distributed.check_batches(validation, validation_batch_size, divisor, "`validation_data`")
            arguments["validation_data"] = validated(validation, self.schema, divisor=divisor)
        return super().fit(*bound.args[1:], **bound.kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        divisor = distributed.check_placement(self)
        checked = validated(x, self.schema, y, divisor)
        batch_size = _EVALUATE.bind_partial(self, x, y, *args, **kwargs).arguments.get("batch_size")
        distributed.check_batches(x, batch_size, divisor)
        return super().evaluate(checked, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        divisor = distributed.check_placement(self)
        x = validated(x, self.schema, divisor=divisor)
        if isinstance(x, Mapping) and len(x["target_item"]) == 0:
            return np.zeros(np.shape(x["target_item"]), "float32")  # no rows, no predictions
        batch_size = _PREDICT.bind_partial(self, x, *args, **kwargs).arguments.get("batch_size")
        distributed.check_batches(x, batch_size, divisor)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x=None, y=None, *args, **kwargs):
        check_batch(self.schema, x, y)
        distributed.check_batch_rows(len(x["target_item"]), distributed.check_placement(self), "`x`")
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x=None, y=None, *args, **kwargs):
        check_batch(self.schema, x, y)
        distributed.check_batch_rows(len(x["target_item"]), distributed.check_placement(self), "`x`")
        return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        check_batch(self.schema, x)
        if len(x["target_item"]) == 0:
            return np.zeros(np.shape(x["target_item"]), "float32")
        distributed.check_batch_rows(len(x["target_item"]), distributed.check_placement(self), "`x`")
        return super().predict_on_batch(x)
