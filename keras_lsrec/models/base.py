"""`SequenceModel`: the base of every model built from a `SequenceSchema`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.training import Trainer

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


class SequenceModel(Trainer):
    """Base of the functional models built from a `SequenceSchema`: the graph
    and its config (as a keras-hub backbone is). How it trains is its parent
    `keras_lsrec.training.Trainer`'s.

    A subclass builds its graph from `schema.inputs()` in its constructor and
    calls `super().__init__(schema=..., inputs=..., outputs=...)`. The base

    - records the subclass constructor's arguments (defaults applied) before
      it runs: they are `get_config()` (with the schema) and attributes of
      the model, so nothing is re-typed and no argument can be left out of a
      saved model; a keyword the constructor does not take is refused;
    - checks the schema's form against `INPUT_FORMS` before the graph is built;
    - hands the graph, and its optional auxiliary click head
      (`auxiliary=(probability_tensor, weight)`), to `Trainer`, which
      validates the inputs of `fit` / `evaluate` / `predict` against the
      schema, trains large embedding tables row-sparsely and adds the
      auxiliary loss in training;
    - builds the request form of the same model (`request_form`).
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
    # The tower arguments whose default differs, for this model, from the ones
    # every model shares (`wiring.TOWER_DEFAULTS`), each measured
    # (docs/benchmarks.md); the contract tests hold the signature to both.
    OWN_TOWER_DEFAULTS: ClassVar[dict[str, Any]] = {}
    # True for a model made for histories clustered in the data path
    # (`keras_lsrec.data.cluster_histories`, `SequenceSchema(cluster_sizes=True)`):
    # the quickstart and the benchmarks cluster its data.
    READS_CLUSTERS: ClassVar[bool] = False
    # Constructor arguments added after a model was first saved, each with the
    # value a `.keras` file saved before it was trained with: `from_config` fills
    # them in where a config lacks them. Read from the class itself, never
    # inherited: a subclass's config records its own arguments.
    SAVED_BEFORE: ClassVar[dict[str, Any]] = {}

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
        super().__init__(inputs=inputs, outputs=outputs, auxiliary=auxiliary, **kwargs)
        self.schema = schema
        arguments = self.__dict__.get("_arguments", {"schema": schema})
        self.hyperparameters = {k: _plain(v) for k, v in arguments.items() if k != "schema"}
        for key, value in self.hyperparameters.items():
            setattr(self, key, value)

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
        config = {**cls.__dict__.get("SAVED_BEFORE", {}), **config}
        schema = config.pop("schema")
        if not isinstance(schema, SequenceSchema):
            schema = SequenceSchema.from_config(schema)
        return cls(schema=schema, **config)
