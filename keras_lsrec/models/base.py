"""Wiring shared by every model: inputs, embeddings per field, masks, the tower."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.data.schema import HISTORY, TARGET, TIME, SequenceSchema
from keras_lsrec.layers.mlp import MLP


def field_vocab_sizes(schema: SequenceSchema) -> dict[str, int]:
    """Vocabulary per embedded field: the id fields, then `time` if present."""
    sizes = dict((f, schema.vocab_sizes[f]) for f in schema.fields)
    if schema.has_time:
        sizes[TIME] = schema.time_vocab_size
    return sizes


def split_inputs(inputs: Mapping[str, Any], schema: SequenceSchema, window: int | None = None):
    """Returns `(target_ids, history_ids, mask)` keyed by field.

    The target's `time` id is 0 (the target happens now). With `window`, keeps
    the last `window` events of the (left-padded) history.
    """
    target = {f: inputs[TARGET + f] for f in schema.fields}
    history = {f: inputs[HISTORY + f] for f in schema.fields}
    if schema.has_time:
        target[TIME] = ops.zeros_like(inputs[TARGET + "item"])
        history[TIME] = inputs[HISTORY + TIME]
    if window is not None:
        history = {f: ids[:, -window:] for f, ids in history.items()}
    mask = ops.not_equal(history["item"], 0)
    return target, history, mask


def tower_input(target, interest, target_representation: bool):
    """`[target, interest]`, plus `target * interest` (TR) when asked."""
    parts = [target, interest]
    if target_representation:
        parts.append(target * interest)
    return ops.concatenate(parts, axis=-1)


def click_probability(tower: keras.layers.Layer, features, mask=None):
    """Applies a tower ending in one logit; returns P(click) as float32 `(B,)`
    (`(B, C)` for candidate sets, whose `mask` of present candidates keeps the
    missing ones out of the tower's batch statistics)."""
    logit = ops.cast(tower(features, mask=mask), "float32")
    return ops.sigmoid(ops.squeeze(logit, -1))


def tower_hyperparameters(
    mlp_units: Sequence[int], mlp_activation: str, input_batch_norm: bool, dropout: float, l2: float
) -> dict[str, Any]:
    """The tower's constructor arguments, shared by every model, as `get_config` stores them."""
    return dict(
        mlp_units=list(mlp_units),
        mlp_activation=mlp_activation,
        input_batch_norm=input_batch_norm,
        dropout=dropout,
        l2=l2,
    )


def make_tower(
    mlp_units: Sequence[int],
    mlp_activation: str,
    input_batch_norm: bool,
    dropout: float,
    l2: float,
    name: str = "tower",
) -> MLP:
    """The prediction tower: hidden layers, then one logit (arguments as in
    `tower_hyperparameters`)."""
    return MLP(
        hidden_units=mlp_units,
        activation=mlp_activation,
        input_batch_norm=input_batch_norm,
        dropout=dropout,
        output_units=1,
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name=name,
    )


class _Auxiliary:
    """Holds an auxiliary head outside Keras' tracking (its layers are the model's)."""

    def __init__(self, graph: keras.Model, weight: float) -> None:
        self.graph = graph
        self.weight = weight
        self.prediction = None


class SequenceModel(keras.Model):
    """Base of the functional models built from a `SequenceSchema`.

    Subclasses build their graph from `schema.inputs()` and call
    `super().__init__(schema=..., inputs=..., outputs=...)`. The base

    - validates dict inputs given to `fit`, `evaluate`, `predict` and their
      `*_on_batch` forms against the schema (`schema.validate`), so
      out-of-vocabulary, negative or float ids, a wrong rank or a missing
      field fail early with the field's name (a direct `model(x)` call is
      not checked: it is also the traced path);
    - supports one auxiliary click head trained with its own binary
      cross-entropy term, `auxiliary=(probability_tensor, weight)`: in
      training the model also evaluates that head and `compute_loss` adds
      `weight * BCE(y, auxiliary)` to the compiled loss. Prediction, evaluation
      and export see only the main output;
    - keeps the constructor's `hyperparameters` (each also an attribute) and
      serializes them with the schema in `get_config`, so `from_config` and
      `.keras` files rebuild the same model.
    """

    # Tuning knobs, as data (read by `keras_lsrec.tuning.hypermodel`): name ->
    # ("choice", values) | ("int", low, high) | ("log", low, high) | ("bool",).
    # Every name is a constructor argument; subclasses extend this dict.
    SEARCH_SPACE: dict[str, tuple] = {
        "mlp_units": ("choice", [(200, 80), (128, 64), (256, 128, 64)]),
        "l2": ("choice", [0.0, 1e-6, 1e-5]),
        "dropout": ("choice", [0.0, 0.1, 0.2]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        inputs: Mapping[str, Any],
        outputs: Any,
        hyperparameters: Mapping[str, Any],
        auxiliary: tuple[Any, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.schema = schema
        self.hyperparameters = dict(hyperparameters)
        for key, value in self.hyperparameters.items():
            setattr(self, key, value)
        self._auxiliary = None
        if auxiliary is not None and auxiliary[1]:
            graph = keras.Model(inputs=inputs, outputs=[outputs, auxiliary[0]])
            self._auxiliary = _Auxiliary(graph, float(auxiliary[1]))
            # Track the head's own layers so their weights train, save and load.
            main = {id(layer) for layer in self.layers}
            self.auxiliary_layers = [layer for layer in graph.layers if id(layer) not in main]

    # -- training with an auxiliary head ----------------------------------
    def call(self, inputs, training=None, mask=None):
        if training and self._auxiliary is not None:
            prediction, auxiliary = self._auxiliary.graph(inputs, training=training)
            self._auxiliary.prediction = auxiliary
            return prediction
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        aux = self._auxiliary
        if aux is not None and aux.prediction is not None and y is not None:
            prediction, aux.prediction = aux.prediction, None
            if training:
                y_true = ops.reshape(ops.cast(y, "float32"), (-1, 1))
                bce = keras.losses.binary_crossentropy(y_true, ops.reshape(prediction, (-1, 1)))
                loss = loss + ops.cast(aux.weight, loss.dtype) * ops.cast(ops.mean(bce), loss.dtype)
        return loss

    # -- tensorflow's sparse gradients ---------------------------------------
    def compile(self, *args, **kwargs):
        """`keras.Model.compile`; on tensorflow the optimizer receives embedding
        gradients dense (see `dense_gradients`), as on jax and torch."""
        super().compile(*args, **kwargs)
        if keras.backend.backend() == "tensorflow" and not hasattr(self.optimizer.apply, "dense_gradients"):
            self.optimizer.apply = dense_gradients(self.optimizer.apply)

    # -- early input validation --------------------------------------------
    def _validate(self, x: Any, y: Any = None) -> None:
        if isinstance(x, Mapping):
            self.schema.validate(x)
            # Labels of candidate sets carry the missing-candidate convention (-1).
            if y is not None and self.schema.has_candidates and hasattr(y, "shape"):
                self.schema.validate_labels(x["target_item"], y)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._validate(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            self._validate(*validation[:2])
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._validate(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._validate(x)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x=None, y=None, *args, **kwargs):
        self._validate(x, y)
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x=None, y=None, *args, **kwargs):
        self._validate(x, y)
        return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        self._validate(x)
        return super().predict_on_batch(x)

    # -- serialization -----------------------------------------------------
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


def dense_gradients(apply):
    """Wraps `optimizer.apply` so that tensorflow's sparse gradients arrive dense.

    On tensorflow the gradient of an embedding lookup is an `IndexedSlices`
    with one row per LOOKUP, so an id seen k times in a batch appears k
    times. Keras 3's optimizers apply such slices row by row with
    `scatter_add`: for Adam the second moment of that id becomes the sum of
    the k squared per-lookup gradients instead of the square of their sum
    (and the first moment is decayed k times), so the id's step is wrong
    (measured with Keras 3.15: an id looked up twice with per-lookup
    gradients +1 and -0.9 moved 0.022 instead of 0.30 over 3 steps; jax and
    torch, whose gradients are dense, agreed with each other). Summing the
    slices into a dense gradient first gives every optimizer the textbook
    update, the same as on jax and torch, and makes mixed-float16's
    loss-scale check see an overflow in an embedding gradient (it did not
    look inside `IndexedSlices`). Cost: one dense gradient per table, as the
    other backends pay.
    """

    def apply_dense(grads, trainable_variables=None):
        grads = [_dense(g) for g in grads]
        return apply(grads, trainable_variables)

    apply_dense.dense_gradients = True
    return apply_dense


def _dense(grad):
    """Sums a tensorflow `IndexedSlices` (one row per lookup) into its dense gradient."""
    if type(grad).__name__ != "IndexedSlices":
        return grad
    return ops.segment_sum(grad.values, grad.indices, num_segments=grad.dense_shape[0])


def check_single_target(schema: SequenceSchema, model: str) -> None:
    if schema.candidates is not None:
        raise ValueError(
            f"{model} scores one target per row; it needs a schema with "
            f"`candidates=None`. Received: `candidates={schema.candidates}`"
        )


def dot_scores(query, keys):
    """`<query_b, keys_bi>` for `query` (B, D) and `keys` (B, L, D): (B, L)."""
    return ops.einsum("bd,bld->bl", query, keys)

