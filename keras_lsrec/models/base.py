"""`SequenceModel`: the base of every model built from a `SequenceSchema`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import keras
import numpy as np

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.training import AuxiliaryHead, prepare_optimizer, steps
from keras_lsrec.training.inputs import check_batch, validated
from keras_lsrec.training.tables import DEFAULT_MIN_ROWS, TableTraining, save_slots_unpadded

ROW, CANDIDATES = "row", "candidates"
# What `keras.Model.__init__` may receive besides the graph; anything else is a typo.
# (No `dtype`: a model's dtype policy comes from `keras.config.set_dtype_policy`.)
_KERAS_KWARGS = frozenset({"name", "trainable"})
_VARIADIC = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: the form a config has after a JSON round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _records_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wraps a model's `__init__`: before it runs, the constructor's arguments
    (defaults applied) are recorded for `get_config` and the schema's form is
    checked against `INPUT_FORMS`.

    The outermost constructor that names `schema` records, once: a user's
    subclass records its own arguments, plus the keywords it passes on to its
    parent through `**kwargs` (so `MyDARE(schema, extra=1, k=3)` keeps `k`); a
    pass-through subclass (`__init__(self, *args, **kwargs)`) leaves the
    recording to the constructor it calls.
    """
    signature = inspect.signature(init)
    parameters = signature.parameters
    names = [n for n, p in parameters.items() if n != "self" and p.kind not in _VARIADIC]
    var_keyword = next((n for n, p in parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    @functools.wraps(init)
    def __init__(self: SequenceModel, *args: Any, **kwargs: Any) -> None:
        if "_arguments" not in self.__dict__ and "schema" in names:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{type(self).__name__}: {error}") from None
            bound.apply_defaults()
            arguments = {n: bound.arguments[n] for n in names}
            if var_keyword is not None:
                passed_on = bound.arguments.get(var_keyword, {})
                arguments.update({k: v for k, v in passed_on.items() if k not in _KERAS_KWARGS})
            type(self).check_schema(arguments["schema"])
            object.__setattr__(self, "_arguments", arguments)
        init(self, *args, **kwargs)

    # Keras reads constructor signatures (`Operation.__new__`): show the real one.
    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


class SequenceModel(keras.Model):
    """Base of the functional models built from a `SequenceSchema`.

    A subclass builds its graph from `schema.inputs()` in its constructor and
    calls `super().__init__(schema=..., inputs=..., outputs=...)`. The base

    - records the subclass constructor's arguments (defaults applied) before
      it runs: they are `get_config()` (with the schema) and attributes of
      the model, so nothing is re-typed and no argument can be left out of a
      saved model; a keyword the constructor does not take is refused;
    - checks the schema's form against `INPUT_FORMS` before the graph is built;
    - validates dict inputs given to `fit`, `evaluate`, `predict` and their
      `*_on_batch` forms against the schema (`schema.validate`), so
      out-of-vocabulary, negative or float ids, a wrong rank or a missing
      field fail early with the field's name (a direct `model(x)` call is
      not checked: it is also the traced path);
    - trains one optional auxiliary click head,
      `auxiliary=(probability_tensor, weight)`: in training the model returns
      `(prediction, p_aux)` and `compute_loss` adds `weight * BCE(y, p_aux)`
      (`keras_lsrec.training.AuxiliaryHead`); prediction, evaluation and
      export see only the main output;
    - hands the compiled optimizer to `keras_lsrec.training.prepare_optimizer`
      and trains large embedding tables row-sparsely (`compile`'s
      `table_optimizer`; `keras_lsrec.training.tables`).
    """

    # Tuning knobs, as data (read by `keras_lsrec.tuning.hypermodel`): name ->
    # ("choice", values) | ("int", low, high) | ("log", low, high) | ("bool",).
    # Every name is a constructor argument; subclasses extend this dict.
    SEARCH_SPACE: ClassVar[dict[str, tuple]] = {
        "mlp_units": ("choice", [(200, 80), (128, 64), (256, 128, 64)]),
        "l2": ("choice", [0.0, 1e-6, 1e-5]),
        "dropout": ("choice", [0.0, 0.1, 0.2]),
    }
    # The batch forms the model takes: "row" (`candidates=None`, one target per
    # row, output (B,)) and/or "candidates" (a candidate set per row, (B, C)).
    INPUT_FORMS: ClassVar[tuple[str, ...]] = (ROW,)
    # True for a model made for histories clustered in the data path
    # (`keras_lsrec.data.cluster_histories`, `SequenceSchema(cluster_sizes=True)`):
    # the quickstart and the benchmarks cluster its data.
    READS_CLUSTERS: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _records_arguments(cls.__dict__["__init__"])  # type: ignore[method-assign]

    @classmethod
    def check_schema(cls, schema: Any) -> None:
        """Refuses a schema whose form is not in `INPUT_FORMS`, naming it."""
        if not isinstance(schema, SequenceSchema):
            raise TypeError(f"{cls.__name__} needs a `SequenceSchema`. Received: `schema={schema!r}`")
        form = CANDIDATES if schema.has_candidates else ROW
        if form not in cls.INPUT_FORMS:
            wanted = (
                "`candidates=C` (or 'variable')" if CANDIDATES in cls.INPUT_FORMS else "`candidates=None`"
            )
            raise ValueError(
                f"{cls.__name__} takes {' or '.join(cls.INPUT_FORMS)} batches; it needs a schema with "
                f"{wanted}. Received: `candidates={schema.candidates}`"
            )

    def __init__(
        self,
        schema: SequenceSchema,
        inputs: Mapping[str, Any],
        outputs: Any,
        auxiliary: tuple[Any, float] | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _KERAS_KWARGS)
        if unknown:
            accepted = sorted({*self.__dict__.get("_arguments", {}), *_KERAS_KWARGS} - set(unknown))
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}. It takes: {accepted}"
            )
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.schema = schema
        arguments = self.__dict__.get("_arguments", {"schema": schema})
        self.hyperparameters = {k: _plain(v) for k, v in arguments.items() if k != "schema"}
        for key, value in self.hyperparameters.items():
            setattr(self, key, value)
        self._auxiliary = None
        if auxiliary is not None and auxiliary[1]:
            head = AuxiliaryHead(inputs, outputs, auxiliary[0], auxiliary[1])
            self._auxiliary = head
            # Track the head's own layers so their weights train, save and load.
            self.auxiliary_layers = head.own_layers(self.layers)

    # -- the request form ----------------------------------------------------
    def request_form(self, candidates: int | str = "variable") -> SequenceModel:
        """This model, scoring a candidate set per row with the history read once.

        Returns the same class built on `schema.replace(candidates=...)` with
        the same hyper-parameters and a copy of this model's weights: it takes
        `history_<f>` `(B, L)` and `target_<f>` `(B, C)` (id 0 at a missing
        candidate) and returns `(B, C)` probabilities, 0 at missing
        candidates, equal to this model's score of each candidate as a row.
        Its per-event work (lookups, projections, masks) is done once per row.
        A model that already takes candidate sets is returned as is when its
        schema matches.

        Args:
            candidates: `C`, or `"variable"` (any number per batch).
        """
        if self.schema.candidates == candidates:
            return self
        if CANDIDATES not in self.INPUT_FORMS:
            raise ValueError(
                f"{type(self).__name__} does not score candidate sets (INPUT_FORMS={self.INPUT_FORMS})."
            )
        request = type(self)(self.schema.replace(candidates=candidates), **self.hyperparameters)
        request.set_weights(self.get_weights())
        return request

    # -- training ------------------------------------------------------------
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
        prepare_optimizer(self.optimizer)
        save_slots_unpadded(self, self.optimizer)
        self._table_training = TableTraining(self, table_optimizer, table_min_rows)
        # Saved with the model, so that loading compiles (and resumes) the same way.
        self._compile_config.config.update(table_optimizer=table_optimizer, table_min_rows=table_min_rows)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Compiles a model loaded from `.keras` as it was saved (loss, metrics,
        optimizer, table training), so that loading restores the optimizer's
        state (table slots included) and training resumes where it stopped.
        (Keras skips this for models that override `compile`, as
        `SequenceModel` does.)"""
        config = keras.saving.deserialize_keras_object(config)
        # A file saved before row-sparse tables existed trained them densely:
        # its optimizer state has dense moments for every table.
        config.setdefault("table_optimizer", "dense")
        self.compile(**config)

    def train_step(self, *args: Any) -> Any:
        """Keras' train step, or the row-sparse one when tables train row-sparsely."""
        tables = getattr(self, "_table_training", None)
        if tables is None or not tables.active:
            return super().train_step(*args)
        return steps.train_step(self, *args)

    def call(self, inputs, training=None, mask=None):
        """The functional graph; with an auxiliary head, in training only,
        `(prediction, auxiliary_prediction)` (see `AuxiliaryHead`)."""
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
    # `model(x)` call is not checked: it is also the traced path.
    def fit(self, x=None, y=None, *args, **kwargs):
        x = validated(x, self.schema, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            validated(validation[0], self.schema, validation[1] if len(validation) > 1 else None)
        elif validation is not None:
            kwargs["validation_data"] = validated(validation, self.schema)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        return super().evaluate(validated(x, self.schema, y), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x = validated(x, self.schema)
        if isinstance(x, Mapping) and len(x["target_item"]) == 0:
            return np.zeros(np.shape(x["target_item"]), "float32")  # no rows, no predictions
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x=None, y=None, *args, **kwargs):
        check_batch(self.schema, x, y)
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x=None, y=None, *args, **kwargs):
        check_batch(self.schema, x, y)
        return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        check_batch(self.schema, x)
        if len(x["target_item"]) == 0:
            return np.zeros(np.shape(x["target_item"]), "float32")
        return super().predict_on_batch(x)

    # -- serialization -----------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "schema": self.schema.get_config(),
            **self.hyperparameters,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        schema = config.pop("schema")
        if not isinstance(schema, SequenceSchema):
            schema = SequenceSchema.from_config(schema)
        return cls(schema=schema, **config)
