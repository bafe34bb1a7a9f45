"""The contract every layer and model of keras_lsrec passes, as one `TestCase`.

`TestCase.run_layer_test` and `TestCase.run_model_test` check in one call
what ../shared/design/ARCHITECTURE.md asks of a layer or a model (config and
`.keras` round trips, output shapes, padding on either side, all-padding
histories, mixed precision, a training step, ...). Test classes derive from
`TestCase` and pytest's fixtures work in their methods. This module is not
collected by pytest (tests/conftest.py); the free functions below are the
helpers the tests share.
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()
# The mixed policies each backend checks: float16 (the GPU serving path) on tensorflow, bfloat16
# on jax, both on torch, so every policy runs on two backends and each test compiles one mixed
# model, not two, on the two slower lanes (CI time).
MIXED_POLICIES = {
    "tensorflow": ("mixed_float16",),
    "jax": ("mixed_bfloat16",),
}.get(BACKEND, ("mixed_float16", "mixed_bfloat16"))
# What `keras.layers.Layer.get_config` adds to a layer's own arguments.
BASE_CONFIG_KEYS = frozenset({"name", "trainable", "dtype"})


# ---------------------------------------------------------------- helpers
def only_under(*backends: str, why: str) -> Any:
    """Marks a test whose check does not depend on the backend (a script, a loop, a property of
    the data), or whose backend-dependent part another test covers on the others, to run in
    these backends' CI lanes only: the suite runs once per backend (CI time)."""
    import pytest

    return pytest.mark.skipif(
        BACKEND not in backends, reason=f"CI time: {why}; checked under {' and '.join(backends)}"
    )


def to_numpy(x: Any) -> Any:
    return keras.tree.map_structure(keras.ops.convert_to_numpy, x)


def forward(model: keras.Model, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """`model`'s inference output as numpy, the cheapest way on this backend: `predict` (one
    compilation) under jax, whose direct calls dispatch and compile op by op; a direct call under
    tensorflow and torch, where `predict` would trace a graph for one batch."""
    if BACKEND == "jax":
        return model.predict(x, verbose=0)
    return to_numpy(model(x, training=False))


def set_batch_norm_statistics(model: keras.Model, seed: int = 0) -> None:
    """Moves every BatchNormalization's moving mean and variance well off their start (0 and 1),
    so that a check of the inference path sees them, without training."""
    rng = np.random.default_rng(seed)
    for variable in model.non_trainable_variables:
        name = variable.path.rsplit("/", 1)[-1]
        if name in ("moving_mean", "moving_variance"):
            low = 0.5 if name == "moving_variance" else -1.0
            variable.assign(rng.uniform(low, 2.0, variable.shape).astype(variable.dtype))


def assert_close(actual: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    np.testing.assert_allclose(to_numpy(actual), expected, atol=atol, rtol=rtol)


def _place_rows(
    arrays: list[np.ndarray], mask: np.ndarray, slots: Callable[[int, int], Any]
) -> list[np.ndarray]:
    """Each row's valid events (where `mask` is True), in order, at positions
    `slots(count, length)` of a zero-padded copy."""
    out = [np.zeros_like(a) for a in arrays]
    for row in range(mask.shape[0]):
        keep = mask[row]
        where = slots(int(keep.sum()), mask.shape[1])
        for src, dst in zip(arrays, out, strict=True):
            dst[row, where] = src[row][keep]
    return out


def right_pad_rows(arrays: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Move each row's padding (where `mask` is False) to the right, keeping order."""
    return _place_rows(arrays, mask, lambda count, length: slice(0, count))


def left_pad_rows(arrays: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Move each row's padding (where `mask` is False) to the left, keeping order."""
    return _place_rows(arrays, mask, lambda count, length: slice(length - count, length))


def scatter_rows(arrays: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Spread each row's valid events (where `mask` is True) over random
    positions of the row, keeping their order: padding on both sides and in
    between. A layer that honours its mask gives the same result."""
    rng = np.random.default_rng(0)
    return _place_rows(arrays, mask, lambda count, length: np.sort(rng.choice(length, count, replace=False)))


def right_pad_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same batch with every `history_*` field right-padded."""
    keys = [k for k in batch if k.startswith("history_")]
    moved = right_pad_rows([batch[k] for k in keys], batch["history_item"] != 0)
    return {**batch, **dict(zip(keys, moved, strict=True))}


def small_batch(data: Any, size: int = 16) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The first `size` training rows of a `synthetic.generate` result, as fresh copies."""
    return {k: v[:size].copy() for k, v in data.train.x.items()}, data.train.y[:size].copy()


def constructor_parameters(cls: type[Any]) -> set[str]:
    """The named parameters of `cls.__init__` (no `self`, `*args`, `**kwargs`)."""
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    parameters = inspect.signature(cls.__init__).parameters
    return {n for n, p in parameters.items() if n != "self" and p.kind not in variadic}


def assert_config_matches_constructor(obj: Any) -> None:
    """`get_config()` holds exactly the constructor's arguments (plus Keras'
    `name`, `trainable`, `dtype`): an argument missing from the config would be
    lost on save, a key that is no argument would break `from_config`."""
    keys = set(obj.get_config()) - BASE_CONFIG_KEYS
    expected = constructor_parameters(type(obj))
    assert keys == expected, (
        f"{type(obj).__name__}: config lacks {sorted(expected - keys)}, has extra {sorted(keys - expected)}"
    )


def variable_gradients(
    fn: Callable[[], Any], variables: list, loss_fn: Callable[[Any], Any]
) -> dict[str, float]:
    """`{variable.path: sum |d loss_fn(fn()) / d variable|}` on the current backend.

    `fn` runs eagerly on Keras layers that own `variables`.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(fn())
        grads = tape.gradient(loss, [v.value for v in variables])
    elif BACKEND == "jax":
        import jax

        def scalar(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss_fn(fn())

        grads = jax.grad(scalar)([v.value for v in variables])
    else:
        for v in variables:
            v.value.grad = None
        loss_fn(fn()).backward()
        grads = [v.value.grad for v in variables]
    norms = {}
    for variable, grad in zip(variables, grads, strict=True):
        if type(grad).__name__ == "IndexedSlices":
            grad = grad.values
        if BACKEND == "torch" and grad is not None:
            grad = grad.detach()
        norms[variable.path] = 0.0 if grad is None else float(np.abs(to_numpy(grad)).sum())
    return norms


def assert_independent_initial_weights(model: keras.Model) -> None:
    """Every kernel and embedding table has its own initializer draw (a shared
    Keras 3 initializer instance had given all tables of a model the same rows
    and an MLP's kernels proportional values): no two are correlated."""
    weights = [
        (v.path, to_numpy(v).ravel()) for v in model.weights if v.path.endswith(("kernel", "embeddings"))
    ]
    assert len(weights) > 2
    for i, (path_a, a) in enumerate(weights):
        for path_b, b in weights[i + 1 :]:
            k = min(a.size, b.size)
            if k >= 16:
                r = np.corrcoef(a[:k], b[:k])[0, 1]
                assert abs(r) < 0.9, (path_a, path_b, r)


# ---------------------------------------------------------------- layer inputs
def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """`{"a": x, "b": {"c": y}}` -> `{"a": x, "b__c": y}` (names of `keras.Input`s)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}__"))
        else:
            flat[prefix + key] = value
    return flat


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `_flatten`."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("__")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def _float_leaves(output: Any) -> list[Any]:
    return [o for o in keras.tree.flatten(output) if "float" in keras.backend.standardize_dtype(o.dtype)]


def _shapes(structure: Any) -> Any:
    """A structure of shapes with every shape a tuple (lists of dims allowed)."""
    return keras.tree.map_shape_structure(lambda shape: tuple(shape), structure)


def _shape_argument(name: str) -> str:
    return "input_shape" if name == "inputs" else f"{name}_shape"


def _shift_invariant(model: Any, variable: Any) -> bool:
    """The bias of a scorer's last unit (one logit per event) under a softmax:
    adding a constant to every logit of a row changes no weight, so its true
    gradient is exactly 0, and whether rounding leaves it a tiny nonzero
    gradient depends on the backend and the order of the sums."""
    softmax = getattr(model, "hyperparameters", {}).get("normalizer") == "softmax"
    last_bias = bool(re.search(r"score_dense_\d+/bias$", variable.path)) and tuple(variable.shape) == (1,)
    return softmax and last_bias


class TestCase:
    """Base class of the test classes (pytest collects its subclasses)."""

    # ------------------------------------------------------------ layers
    def run_layer_test(
        self,
        cls: type[keras.layers.Layer],
        init_kwargs: Mapping[str, Any],
        input_data: Mapping[str, Any],
        expected_output_shape: Any,
        expected_num_trainable_weights: int | None = None,
        expected_num_non_trainable_weights: int = 0,
        sequence_args: tuple[str, ...] = (),
        mask_arg: str = "mask",
        output_sequence: bool = False,
        output_mask: bool = False,
        run_mixed_precision: bool = True,
        run_training: bool = True,
        atol: float = 1e-5,
    ) -> keras.layers.Layer:
        """Checks the whole contract of a layer; returns the eagerly called layer.

        `input_data` holds the call arguments by name (numpy arrays, or dicts
        of arrays such as the ids of a `FieldEmbedding`). `sequence_args` name
        the arguments whose axis 1 is the sequence that `input_data[mask_arg]`
        masks (without a mask argument, the first of them holds ids and 0 is
        padding); `output_sequence` says the output keeps that axis;
        `output_mask` says the output is `(values, mask)` and only the values
        under the mask are defined (e.g. retrieved slots). Checked:

        - the config holds exactly the constructor's arguments and round-trips;
        - the output has `expected_output_shape`, the compute dtype, finite
          values; `compute_output_shape` agrees;
        - the expected numbers of trainable and non-trainable weights;
        - the same result wherever the padding is (every row's valid events moved
          to the left, to the right, or spread with gaps), and a finite one for
          all-padding rows;
        - `.keras` save -> load gives the same output in a functional model;
        - mixed_float16 and mixed_bfloat16 run without NaN or inf;
        - a `fit` step moves the trainable weights and gives a finite loss.
        """
        init_kwargs = dict(init_kwargs)
        layer = cls(**init_kwargs)
        config = layer.get_config()
        assert_config_matches_constructor(layer)
        assert cls.from_config(config).get_config() == config

        output = layer(**input_data)
        self._check_output(layer, output, expected_output_shape)
        shapes = {
            _shape_argument(name): keras.tree.map_structure(lambda a: tuple(a.shape), value)
            for name, value in input_data.items()
        }
        accepted = inspect.signature(layer.compute_output_shape).parameters
        computed = layer.compute_output_shape(**{k: v for k, v in shapes.items() if k in accepted})
        assert _shapes(computed) == _shapes(expected_output_shape), (computed, expected_output_shape)
        if expected_num_trainable_weights is not None:
            assert len(layer.trainable_weights) == expected_num_trainable_weights
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

        if sequence_args:
            self._check_padding(
                layer, input_data, output, sequence_args, mask_arg, output_sequence, output_mask, atol
            )
        self._check_saving(cls, config, input_data, run_training)
        if run_mixed_precision:
            for policy in MIXED_POLICIES:
                mixed = cls(**{**init_kwargs, "dtype": policy})
                data = self._all_padding(input_data, sequence_args, mask_arg, rows=slice(0, 1))
                for leaf in _float_leaves(mixed(**data)):
                    assert keras.backend.standardize_dtype(leaf.dtype) == mixed.compute_dtype
                    assert np.all(np.isfinite(to_numpy(leaf).astype("float32"))), policy
        return layer

    def _check_output(self, layer: keras.layers.Layer, output: Any, expected_shape: Any) -> None:
        got = keras.tree.map_structure(lambda o: tuple(o.shape), output)
        assert got == _shapes(expected_shape), (got, expected_shape)
        leaves = _float_leaves(output)
        assert leaves, "the layer returned no floating-point output"
        for leaf in leaves:
            assert keras.backend.standardize_dtype(leaf.dtype) == layer.compute_dtype
            assert np.all(np.isfinite(to_numpy(leaf)))

    @staticmethod
    def _mask(input_data: Mapping[str, Any], sequence_args: tuple[str, ...], mask_arg: str) -> np.ndarray:
        if mask_arg in input_data:
            return np.asarray(input_data[mask_arg], bool)
        ids = input_data[sequence_args[0]]
        if isinstance(ids, Mapping):  # ids per field: the item field marks padding
            ids = ids["item"] if "item" in ids else next(iter(ids.values()))
        return np.asarray(ids) != 0

    def _moved(self, input_data, sequence_args, mask_arg, mover) -> dict[str, Any]:
        """`input_data` with every row's valid events moved by `mover` (`left_pad_rows`...)."""
        mask = self._mask(input_data, sequence_args, mask_arg)
        moved = dict(input_data)
        for name in sequence_args:
            flat = _flatten({name: input_data[name]})
            moved.update(_nest(dict(zip(flat, mover(list(flat.values()), mask), strict=True))))
        if mask_arg in input_data:
            moved[mask_arg] = mover([mask], mask)[0]
        return moved

    def _check_padding(
        self, layer, input_data, output, sequence_args, mask_arg, output_sequence, output_mask, atol
    ) -> None:
        mask = self._mask(input_data, sequence_args, mask_arg)
        assert (~mask).any(), "give some padding to test padding"

        def defined(out: Any) -> list[np.ndarray]:
            leaves = [np.asarray(to_numpy(o)) for o in keras.tree.flatten(out)]
            if not output_mask:
                return leaves
            valid = leaves[-1].astype(bool)
            return [np.where(valid.reshape(valid.shape + (1,) * (v.ndim - valid.ndim)), v, 0) for v in leaves]

        for mover in (left_pad_rows, right_pad_rows, scatter_rows):
            moved = layer(**self._moved(input_data, sequence_args, mask_arg, mover))
            moved_mask = mover([mask], mask)[0]
            for got, want in zip(defined(moved), defined(output), strict=True):
                if output_sequence:  # the outputs of the valid events, in order
                    got, want = got[moved_mask], want[mask]
                np.testing.assert_allclose(got, want, atol=atol, rtol=1e-4, err_msg=mover.__name__)
        empty = layer(**self._all_padding(input_data, sequence_args, mask_arg))
        for leaf in _float_leaves(empty):
            assert np.all(np.isfinite(to_numpy(leaf))), "all-padding rows"

    def _all_padding(self, input_data, sequence_args, mask_arg, rows=slice(None)) -> dict[str, Any]:
        """`input_data` whose `rows` are all padding (ids 0, mask False)."""
        if not sequence_args:
            return dict(input_data)
        data = dict(input_data)
        for name in sequence_args:
            flat = _flatten({name: input_data[name]})
            cleared = {}
            for path, array in flat.items():
                array = np.array(array)
                if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
                    array[rows] = 0
                cleared[path] = array
            data.update(_nest(cleared))
        if mask_arg in input_data:
            mask = np.array(input_data[mask_arg], bool)
            mask[rows] = False
            data[mask_arg] = mask
        return data

    def _check_saving(self, cls, config, input_data, run_training: bool) -> None:
        flat = _flatten(input_data)
        symbolic = {
            path: keras.Input(shape=a.shape[1:], dtype=str(np.asarray(a).dtype), name=path)
            for path, a in flat.items()
        }
        layer = cls.from_config(config)
        output = layer(**_nest(symbolic))
        model = keras.Model(symbolic, output)
        before = to_numpy(model.predict(flat, verbose=0))
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "layer.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        after = to_numpy(loaded.predict(flat, verbose=0))
        for got, want in zip(keras.tree.flatten(after), keras.tree.flatten(before), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
        if not (run_training and layer.trainable_weights):
            return
        parts = [
            keras.ops.reshape(keras.ops.cast(o, "float32"), (-1, int(np.prod(o.shape[1:]))))
            for o in _float_leaves(output)
        ]
        trainer = keras.Model(symbolic, keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0])
        trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        start = [to_numpy(v).copy() for v in layer.trainable_weights]
        target = np.ones(trainer.output.shape[1:], "float32")[None].repeat(len(next(iter(flat.values()))), 0)
        history = trainer.fit(flat, target, epochs=1, batch_size=len(target), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert any(
            not np.array_equal(s, to_numpy(v)) for s, v in zip(start, layer.trainable_weights, strict=True)
        )

    # ------------------------------------------------------------ models
    def run_model_test(
        self,
        cls: type[Any],
        init_kwargs: Mapping[str, Any],
        schema: Any,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        loss: Any = "binary_crossentropy",
        run_mixed_precision: bool = True,
        run_saved_model: bool = True,
        right_padding: bool = True,
    ) -> keras.Model:
        """Checks the whole contract of a model on one batch; returns the model.

        Single-target (`y` (B,)) and candidate-set models (`y` (B, C), -1 for
        a missing candidate) alike: prediction shape, dtype and range (0 at
        missing candidates); the config holds exactly the constructor's
        arguments and round-trips; `.keras` save -> load -> same predictions;
        SavedModel parity (under tensorflow); the same predictions for left-
        and right-padded histories and for extra left padding; finite
        predictions for all-padding histories and histories of length 0; mixed precision training
        without NaN; a `fit` step that moves the weights; bad ids refused with
        the field named; every `SEARCH_SPACE` key a constructor argument;
        independent initial draws of every kernel and table.
        `right_padding=False` skips the right-padded batch, for a model that
        documents that it relies on left padding (`DIN(history_window=N)`).
        """
        model = cls(schema, **init_kwargs)
        assert_config_matches_constructor(model)
        config = model.get_config()
        clone = cls.from_config(config)
        assert clone.get_config() == config
        assert len(clone.weights) == len(model.weights)
        assert set(cls.SEARCH_SPACE) <= constructor_parameters(cls)
        assert_independent_initial_weights(model)

        prediction = model.predict(x, verbose=0)
        assert prediction.shape == y.shape and prediction.dtype == np.float32
        assert np.all((prediction >= 0) & (prediction <= 1))
        if y.ndim == 2:
            assert np.all(prediction[x["target_item"] == 0] == 0)

        self._check_model_padding(model, x, prediction, right_padding)
        self._check_model_saving(model, x, prediction, run_saved_model)
        self._check_bad_input(model, x, y)

        model.compile(optimizer="adam", loss=loss)
        start = [to_numpy(v).copy() for v in model.trainable_weights]
        history = model.fit(x, y, epochs=1, batch_size=len(y), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        moved = [
            not np.array_equal(s, to_numpy(v)) or _shift_invariant(model, v)
            for s, v in zip(start, model.trainable_weights, strict=True)
        ]
        assert all(moved), [v.path for v, m in zip(model.trainable_weights, moved, strict=True) if not m]

        if run_mixed_precision:
            self._check_model_mixed_precision(cls, init_kwargs, schema, x, y, loss)
        return model

    def _check_model_padding(self, model, x, prediction, right_padding: bool) -> None:
        # Direct calls: the same graph as `predict`, without compiling a predict function per check.
        if right_padding:
            right = to_numpy(model(right_pad_batch(x), training=False))
            np.testing.assert_allclose(right, prediction, atol=1e-5)
        # Extra left padding (what a client padding to a fixed length sends the
        # SavedModel, which takes any length) changes nothing in the graph.
        longer = {
            k: (np.pad(v, ((0, 0), (7, 0)) + ((0, 0),) * (v.ndim - 2)) if k.startswith("history_") else v)
            for k, v in x.items()
        }
        np.testing.assert_allclose(to_numpy(model(longer, training=False)), prediction, atol=1e-5)
        empty = {k: (np.zeros_like(v) if k.startswith("history_") else v) for k, v in x.items()}
        assert np.all(np.isfinite(to_numpy(model(empty, training=False))))
        # A history of length 0 (a new user): finite too, through `predict`.
        none = {k: (v[:, :0] if k.startswith("history_") else v) for k, v in x.items()}
        assert np.all(np.isfinite(model.predict(none, verbose=0)))

    def _check_model_saving(self, model, x, prediction, run_saved_model: bool) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
            assert type(loaded) is type(model)
            np.testing.assert_allclose(to_numpy(loaded(x, training=False)), prediction, atol=1e-6)
            if run_saved_model and BACKEND == "tensorflow":
                import tensorflow as tf

                export_dir = os.path.join(directory, "saved_model")
                model.export(export_dir, format="tf_saved_model", verbose=False)
                reloaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
                served = reloaded.serve({k: tf.constant(v) for k, v in x.items()})
                np.testing.assert_allclose(served.numpy(), prediction, atol=1e-5)
                none = {k: tf.constant(v[:, :0] if k.startswith("history_") else v) for k, v in x.items()}
                assert np.all(np.isfinite(reloaded.serve(none).numpy()))  # histories of length 0

    def _check_bad_input(self, model, x, y) -> None:
        import pytest

        bad = dict(x)
        bad["target_item"] = x["target_item"] + model.schema.vocab_sizes["item"]
        for call in (lambda: model.predict(bad, verbose=0), lambda: model.train_on_batch(bad, y)):
            with pytest.raises(ValueError, match="target_item"):
                call()
        with pytest.raises(TypeError, match="unexpected keyword"):
            type(model)(model.schema, not_an_argument=1)

    def _check_model_mixed_precision(self, cls, init_kwargs, schema, x, y, loss) -> None:
        x = {k: v.copy() for k, v in x.items()}
        for key in x:
            if key.startswith("history_"):
                x[key][0] = 0  # one all-padding history
        for policy in MIXED_POLICIES:
            keras.config.set_dtype_policy(policy)
            try:
                model = cls(schema, **init_kwargs)
                model.compile(optimizer="adam", loss=loss)
                losses = [model.train_on_batch(x, y) for _ in range(2)]
                prediction = to_numpy(model(x, training=False))
            finally:
                keras.config.set_dtype_policy("float32")
            assert np.all(np.isfinite(losses)), policy
            assert prediction.dtype == np.float32 and np.all(np.isfinite(prediction)), policy
