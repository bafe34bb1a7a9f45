"""Row-sparse training of embedding tables: a step reads and writes only the
rows its batch looks up, in the table and in the table's optimizer slots.

Why: the gradient of a lookup, made dense, has the vocabulary's size, and a
dense optimizer then reads and writes every row of the table and of its
slots each step. With millions of ids that is most of the step's time
(docs/benchmarks.md, "Vocabulary"). Here a step costs what its batch touches:

1. For each field with large tables, the batch's ids of that field
   (`history_<f>`, `target_<f>`, and the padding id 0), N of them, are
   written into the field's position map, a (vocabulary,) int32 array kept
   with the optimizer: `position[ids[j]] = j`, the first occurrence of an
   id winning (`steps.write_positions`, deterministic also when a
   distribution splits the scatter), and `position[ids]` then gives every
   occurrence the same representative. No sort, and nothing of the
   vocabulary's size is read: two scatters and a gather of N ints.
2. `rows = table[ids]` (N, D) is given to the table layer
   (`EmbeddingTable.read_rows`): the forward pass reads
   `rows[position[x]]`, so the backend's autodiff returns the gradient of
   `rows`, the gradients of an id that occurs k times in the batch summed
   at its representative.
3. Every occurrence takes its representative's gradient; a row rule
   (`RowSGD`, `RowAdagrad`, `RowAdam`) updates the N rows and the same rows
   of its slots, and they are written back in place
   (`keras_lsrec.training.steps.write_rows`; the occurrences of an id carry
   equal values). Untouched rows and their slots are not read and stay
   bit-identical.

Everything else (dense layers, small tables) is updated by the compiled
optimizer as usual. The per-backend train steps that wire this into
`fit` live in `keras_lsrec.training.steps`, one file per backend.
"""

from __future__ import annotations

import contextlib
import math
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.features import Categorical
from keras_lsrec.data.schema import history_key, target_key
from keras_lsrec.layers.embedding_table import EmbeddingTable
from keras_lsrec.layers.mesh_padding import PaddedRowsStore
from keras_lsrec.training import keras_private
from keras_lsrec.training.steps import unsupported, write_positions, write_rows
from keras_lsrec.validation import check_non_negative, check_range

# Tables with fewer rows train densely: one pass over such a table costs about
# what the row-sparse bookkeeping of a batch of 256 x 200 ids does (dense was
# as fast or faster at 100K rows, row-sparse 1.3-1.9x faster at 300K on every
# backend: bench/vocab.py, docs/benchmarks.md "Vocabulary").
DEFAULT_MIN_ROWS = 200_000


def _check_non_negative_real(**values: float) -> None:
    for name, value in values.items():
        check_range(name, value, 0.0, math.inf, high_inclusive=False)


class RowRule:
    """An optimizer update of some rows of a table and of the same rows of its
    slots. Subclasses name their slots (`SLOTS`: name -> initial value) and
    implement `update`. `learning_rate=None` follows the compiled optimizer's
    current learning rate (schedules and `ReduceLROnPlateau` included)."""

    SLOTS: dict[str, float] = {}

    def __init__(self, learning_rate: float | None = None) -> None:
        if learning_rate is not None:
            _check_non_negative_real(learning_rate=learning_rate)
        self.learning_rate = learning_rate

    def update(self, rows, slots: list, grads, learning_rate, step) -> tuple[Any, list]:
        """New `(rows, slots)` from the rows' summed gradients `grads` at
        optimizer step `step` (1 on the first update)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RowRule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras_lsrec_export
class RowSGD(RowRule):
    """Plain SGD on the touched rows: `row -= lr * g`. Identical to dense SGD
    (without momentum): an untouched row has a zero gradient."""

    def update(self, rows, slots, grads, learning_rate, step):
        return rows - learning_rate * grads, []


@keras_lsrec_export
class RowAdagrad(RowRule):
    """Adagrad on the touched rows, Keras' formula: `acc += g^2;
    row -= lr * g / sqrt(acc + epsilon)`. Identical to dense Adagrad: an
    untouched row has a zero gradient and its accumulator does not change."""

    def __init__(
        self,
        learning_rate: float | None = None,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        _check_non_negative_real(initial_accumulator_value=initial_accumulator_value, epsilon=epsilon)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.SLOTS = {"accumulator": initial_accumulator_value}

    def update(self, rows, slots, grads, learning_rate, step):
        accumulator = slots[0] + ops.square(grads)
        return rows - learning_rate * grads / ops.sqrt(accumulator + self.epsilon), [accumulator]

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


@keras_lsrec_export
class RowAdam(RowRule):
    """Lazy Adam: Adam's update applied to the touched rows only.

    For a touched row, with the optimizer's global step `t`:
    `m += (1 - beta_1) (g - m)`, `v += (1 - beta_2) (g^2 - v)`,
    `row -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`
    (Keras' `Adam`). The moments of untouched rows are neither decayed nor
    applied: dense Adam would still move a row seen earlier by its decaying
    momentum at every step, lazy Adam moves it only when its id is in the
    batch. This is TF Addons' `LazyAdam`; on the first step, and for rows
    touched at every step, the two agree exactly.
    """

    SLOTS = {"momentum": 0.0, "velocity": 0.0}

    def __init__(
        self,
        learning_rate: float | None = None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        check_range("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        check_range("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        _check_non_negative_real(epsilon=epsilon)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def update(self, rows, slots, grads, learning_rate, step):
        m, v = slots
        m = m + (grads - m) * (1 - self.beta_1)
        v = v + (ops.square(grads) - v) * (1 - self.beta_2)
        alpha = (
            learning_rate * ops.sqrt(1 - ops.power(self.beta_2, step)) / (1 - ops.power(self.beta_1, step))
        )
        return rows - alpha * m / (ops.sqrt(v) + self.epsilon), [m, v]

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


def lazy_rule(optimizer: keras.optimizers.Optimizer) -> RowRule | None:
    """The row rule that is `optimizer` restricted to touched rows, following
    its learning rate; `None` when there is none (another optimizer class,
    momentum, weight decay, clipping, EMA or gradient accumulation: all of
    them touch every row)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if (
        inner.weight_decay
        or inner.clipnorm
        or inner.clipvalue
        or inner.global_clipnorm
        or inner.use_ema
        or inner.gradient_accumulation_steps
    ):
        return None
    # (By name too: a backend may substitute its own subclass, e.g. torch's
    # `Adam`; a true subclass such as `AdamW` is another optimizer.)
    kind = type(inner).__name__
    if kind == "Adam" and isinstance(inner, keras.optimizers.Adam) and not inner.amsgrad:
        return RowAdam(None, inner.beta_1, inner.beta_2, inner.epsilon)
    if kind == "Adagrad" and isinstance(inner, keras.optimizers.Adagrad):
        return RowAdagrad(None, inner.initial_accumulator_value, inner.epsilon)
    if kind == "SGD" and isinstance(inner, keras.optimizers.SGD) and not inner.momentum:
        return RowSGD(None)
    return None


def save_slots_unpadded(model: keras.Model, optimizer: Any) -> None:
    """Under a mesh that pads `model`'s tables (`keras_lsrec.layers.mesh_padding`),
    makes `optimizer` save the tables' slots without their padding rows, and
    pad them again when loading (as the tables do, `EmbeddingTable`), so a
    `.keras` file resumes on any mesh. A slot is an optimizer variable made
    from a table (`add_variable_from_reference`: its name starts with the
    table's path) with the table's stored rows. Without padded tables (one
    device, or a mesh that divides every vocabulary) the optimizer is left
    as it is. This is the one run-time change of a Keras object that
    remains (`keras_lsrec.training.keras_private` says why)."""
    tables = {
        layer.embeddings.path.replace("/", "_") + "_": (layer.input_dim, layer.storage_rows)
        for layer in keras_private.all_layers(model)
        if isinstance(layer, EmbeddingTable) and layer.built and layer.storage_rows != layer.input_dim
    }
    if not tables:
        return
    for opt in {id(o): o for o in (optimizer, getattr(optimizer, "inner_optimizer", None)) if o}.values():
        if not isinstance(opt.save_own_variables, types.MethodType):
            continue  # (done by an earlier compile)
        save, load = opt.save_own_variables, opt.load_own_variables

        def padded(opt: Any = opt) -> dict[str, tuple[int, int]]:
            return {
                str(i): rows
                for i, variable in enumerate(opt.variables)
                for prefix, rows in tables.items()
                if variable.name.startswith(prefix) and len(variable.shape) and variable.shape[0] == rows[1]
            }

        def save_unpadded(store: Any, save: Any = save, padded: Any = padded) -> None:
            save(PaddedRowsStore(store, padded()))

        def load_padded(store: Any, load: Any = load, padded: Any = padded) -> None:
            load(PaddedRowsStore(store, padded()))

        opt.save_own_variables, opt.load_own_variables = save_unpadded, load_padded


@dataclass
class Block:
    """One table's rows for one step: the batch's `ids` of its field (N,),
    the field's `position` map after they were written into it, each
    occurrence's `representative` (N,), and the `rows` (N, D)."""

    ids: Any
    position: Any
    representative: Any
    rows: Any


class TableTraining:
    """The row-sparse training of one compiled model.

    Built by `SequenceModel.compile`: it chooses the tables that train
    row-sparsely (`EmbeddingTable`s whose field the schema batches, with at
    least `min_rows` rows, no regularizer or constraint, trainable), builds
    the compiled optimizer on every other trainable variable, and adds the
    rule's slots of each sparse table, and a position map per field, to the
    compiled optimizer's variables (so `.keras` saves and restores them, and
    jax's train state carries them).
    """

    def __init__(
        self,
        model: keras.Model,
        table_optimizer: Any = "auto",
        min_rows: int = DEFAULT_MIN_ROWS,
    ) -> None:
        check_non_negative(min_rows=min_rows)
        self.optimizer = model.optimizer
        schema = model.schema
        # The id fields, `time`, and the categorical features (a user id table, item tags).
        fields = set(schema.fields) | ({"time"} if schema.has_time else set())
        fields |= {name for name in schema.features if not schema.is_dense(name)}
        fields |= {name for name, f in schema.item_features.items() if isinstance(f, Categorical)}
        trainable = {id(v) for v in model.trainable_variables}
        candidates = [
            layer
            for layer in keras_private.all_layers(model)
            if isinstance(layer, EmbeddingTable)
            and layer.field in fields
            and id(layer.embeddings) in trainable  # (the variable's own flag decides)
            and layer.input_dim >= min_rows
            and not layer.lora_enabled
            and layer.quantization_mode is None
            and layer.embeddings_regularizer is None
            and getattr(layer.embeddings, "regularizer", None) is None
            and layer.embeddings_constraint is None
            and getattr(layer.embeddings, "constraint", None) is None
        ]
        reason = unsupported() if candidates and self.optimizer is not None else None
        if reason:
            warnings.warn(f"Embedding tables train densely: {reason}", stacklevel=3)
        self.rule = None
        if self.optimizer is not None and reason is None:
            self.rule = _rule(table_optimizer, self.optimizer, bool(candidates))
        self.tables = candidates if self.rule is not None else []
        sparse = {id(layer.embeddings) for layer in self.tables}
        self.dense_variables = [v for v in model.trainable_variables if id(v) not in sparse]
        index = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self.dense_indices = [index[id(v)] for v in self.dense_variables]
        if self.optimizer is None:
            return
        if not self.optimizer.built:
            self.optimizer.build(self.dense_variables)
        elif self.tables and {id(v) for v in keras_private.optimizer_variables_built_for(self.optimizer)} != {
            id(v) for v in self.dense_variables
        }:
            raise ValueError(
                "The optimizer given to `compile` is already built on other variables (used by another "
                "model or another compile of this one); row-sparse table training needs a fresh optimizer, "
                "built on the model's dense variables only. Pass a new optimizer instance, or "
                "`table_optimizer='dense'`."
            )
        self.slots = [self._slots(layer) for layer in self.tables]
        self.positions: dict = {}
        for layer in self.tables:
            key = (layer.field, layer.input_dim)
            if key not in self.positions:
                name = f"{layer.field}_{layer.input_dim}_position"
                self.positions[key] = self._variable(
                    name,
                    lambda layer=layer, name=name: self.optimizer.add_variable(
                        (layer.input_dim,), "zeros", dtype="int32", name=name
                    ),
                )

    @property
    def active(self) -> bool:
        return bool(self.tables)

    @property
    def _row_rule(self) -> RowRule:
        if self.rule is None:
            raise RuntimeError("No table trains row-sparsely in this model.")
        return self.rule

    def _variable(self, name: str, create: Any) -> Any:
        # An optimizer variable of this name made by an earlier compile with
        # the same optimizer is reused (and `.keras` restores the variables
        # in the order they were made).
        existing = next((v for v in self.optimizer.variables if v.name == name), None)
        return create() if existing is None else existing

    def _slots(self, layer: EmbeddingTable) -> list:
        prefix = layer.embeddings.path.replace("/", "_")  # (Keras' name of a slot of a variable)
        return [
            self._variable(
                f"{prefix}_{name}",
                lambda name=name, value=value: self.optimizer.add_variable_from_reference(
                    layer.embeddings, name=name, initializer=keras.initializers.Constant(value)
                ),
            )
            for name, value in self._row_rule.SLOTS.items()
        ]

    # -- one step ------------------------------------------------------------
    def blocks(self, x: dict) -> list[Block]:
        """The step's block of each sparse table, from the batch `x`; writes
        the batch's ids into the position maps (under jax, call it inside a
        `StatelessScope` over the model's and the optimizer's variables)."""
        fields: dict = {}
        blocks = []
        for layer in self.tables:
            key = (layer.field, layer.input_dim)
            if key not in fields:
                parts = [ops.zeros((1,), "int32")]  # padding: masked events, `time` targets
                field = str(layer.field)
                keys = [history_key(field), target_key(field), field]  # (a per-row feature: its name)
                parts += [ops.reshape(ops.cast(x[k], "int32"), (-1,)) for k in keys if k in x]
                ids = ops.concatenate(parts)
                variable = self.positions[key]
                write_positions(variable, ids)
                position = ops.convert_to_tensor(variable.value)
                fields[key] = (ids, position, ops.take(position, ids, axis=0))
            ids, position, representative = fields[key]
            rows = ops.stop_gradient(ops.take(layer.embeddings, ids, axis=0))
            blocks.append(Block(ids, position, representative, rows))
        return blocks

    @contextlib.contextmanager
    def reading(self, blocks: Sequence[Block], rows: Sequence[Any] | None = None) -> Iterator[None]:
        """Makes the sparse tables read `rows` (default: the blocks' rows)."""
        rows = [b.rows for b in blocks] if rows is None else rows
        try:
            for layer, block, r in zip(self.tables, blocks, rows, strict=True):
                layer.read_rows(block.position, r)
            yield
        finally:
            for layer in self.tables:
                layer.read_table()

    def apply_rows(self, dense_grads: list, row_grads: list, blocks: Sequence[Block]) -> list:
        """Applies the row rule to the blocks' rows, before the step's dense
        update, and returns the dense gradients for the compiled optimizer.

        `*_grads` are the (loss-scaled) gradients. Under a loss-scale
        optimizer the whole step is skipped, tables included, when any
        gradient is not finite: the returned dense gradients then carry a NaN
        so that the optimizer skips its part too and halves the scale.
        """
        optimizer = self.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        step = ops.cast(inner.iterations + 1, "float32")
        rule = self._row_rule
        learning_rate = rule.learning_rate
        if learning_rate is None:
            learning_rate = ops.cast(inner.learning_rate, "float32")
        dense_grads = list(dense_grads)
        finite = None
        if hasattr(optimizer, "dynamic_scale"):  # LossScaleOptimizer
            row_grads = [g / optimizer.dynamic_scale for g in row_grads]
            rows_finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in row_grads]))
            finite = ops.logical_and(rows_finite, optimizer.check_finite(dense_grads))
            k = next((i for i, g in enumerate(dense_grads) if g is not None), None)
            if k is not None:
                poison = ops.where(rows_finite, 0.0, float("nan"))
                dense_grads[k] = dense_grads[k] + ops.cast(poison, dense_grads[k].dtype)
        # A table the forward pass did not read has no gradient: a zero one.
        row_grads = [
            ops.zeros_like(b.rows) if g is None else g for g, b in zip(row_grads, blocks, strict=True)
        ]
        if inner.loss_scale_factor is not None:
            row_grads = [g / inner.loss_scale_factor for g in row_grads]
        for layer, slots, block, grads in zip(self.tables, self.slots, blocks, row_grads, strict=True):
            # Every occurrence of an id takes the gradient summed at its
            # representative, hence the same new values: the writes agree.
            grads = ops.take(ops.cast(grads, block.rows.dtype), block.representative, axis=0)
            old_slots = [ops.take(s, block.ids, axis=0) for s in slots]
            rows, new_slots = rule.update(block.rows, old_slots, grads, learning_rate, step)
            if finite is not None:
                rows = ops.where(finite, rows, block.rows)
                new_slots = [ops.where(finite, n, o) for n, o in zip(new_slots, old_slots, strict=True)]
            write_rows(layer.embeddings, block.ids, rows)
            for slot, values in zip(slots, new_slots, strict=True):
                write_rows(slot, block.ids, values)
        return dense_grads


def _rule(table_optimizer: Any, optimizer: keras.optimizers.Optimizer, has_tables: bool) -> RowRule | None:
    if table_optimizer is None or table_optimizer == "dense":
        return None
    if isinstance(table_optimizer, RowRule):
        return table_optimizer
    if isinstance(table_optimizer, dict):
        return keras.saving.deserialize_keras_object(table_optimizer)
    if table_optimizer != "auto":
        raise ValueError(
            "`table_optimizer` must be 'auto', 'dense', None or a row rule "
            f"(RowSGD, RowAdagrad, RowAdam). Received: table_optimizer={table_optimizer!r}"
        )
    rule = lazy_rule(optimizer)
    if rule is None and has_tables:
        warnings.warn(
            f"{type(getattr(optimizer, 'inner_optimizer', optimizer)).__name__} with these settings has no "
            "row-sparse form: embedding tables train densely (each step updates every row). Pass "
            "`table_optimizer=keras_lsrec.training.RowAdam()` (or RowAdagrad, RowSGD) to `compile` "
            "to train them row-sparsely.",
            stacklevel=3,
        )
    return rule
