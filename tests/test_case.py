"""Shared test helpers: layer and model round trips, gradients per backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()


def to_numpy(x: Any) -> Any:
    return keras.tree.map_structure(keras.ops.convert_to_numpy, x)


def assert_close(actual: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    np.testing.assert_allclose(to_numpy(actual), expected, atol=atol, rtol=rtol)


def symbolic_inputs(arrays: Mapping[str, np.ndarray]) -> dict[str, keras.KerasTensor]:
    return {
        name: keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)
        for name, value in arrays.items()
    }


def run_layer_test(
    layer: keras.layers.Layer,
    inputs: Mapping[str, np.ndarray],
    call: Callable[[keras.layers.Layer, Mapping[str, Any]], Any],
    expected_shape: tuple,
    tmp_path: Any,
    trainable: bool = True,
) -> None:
    """Config round trip, eager and functional output shape and dtype, `fit`,
    and `.keras` save -> load -> identical output.

    `call(layer, inputs)` wires the layer to a dict of arrays or of
    `keras.Input`s and returns ONE tensor.
    """
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config

    eager = call(layer, dict(inputs))
    assert tuple(eager.shape) == tuple(expected_shape)
    assert keras.backend.standardize_dtype(eager.dtype) == layer.compute_dtype
    assert np.all(np.isfinite(to_numpy(eager)))

    symbolic = symbolic_inputs(inputs)
    fresh = layer.__class__.from_config(config)
    model = keras.Model(symbolic, call(fresh, symbolic))
    assert tuple(model.output.shape)[1:] == tuple(expected_shape)[1:]
    before = model.predict(dict(inputs), verbose=0)
    path = os.path.join(str(tmp_path), "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(dict(inputs), verbose=0), before, atol=1e-6)

    if trainable:
        assert model.trainable_weights
        model.compile(optimizer="adam", loss="mse")
        target = np.zeros(before.shape, "float32")
        history = model.fit(dict(inputs), target, epochs=1, batch_size=len(target), verbose=0)
        assert np.isfinite(history.history["loss"][0])


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
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn(fn())

        grads = jax.grad(scalar)([v.value for v in variables])
    else:
        for v in variables:
            v.value.grad = None
        loss_fn(fn()).backward()
        grads = [v.value.grad for v in variables]
    norms = {}
    for variable, grad in zip(variables, grads):
        if type(grad).__name__ == "IndexedSlices":
            grad = grad.values
        if BACKEND == "torch" and grad is not None:
            grad = grad.detach()
        norms[variable.path] = 0.0 if grad is None else float(np.abs(to_numpy(grad)).sum())
    return norms


def right_pad_rows(arrays: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Move each row's padding (where `mask` is False) to the right, keeping order."""
    out = [np.zeros_like(a) for a in arrays]
    for row in range(mask.shape[0]):
        keep = mask[row]
        for src, dst in zip(arrays, out):
            dst[row, : keep.sum()] = src[row][keep]
    return out


def right_pad_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same batch with every `history_*` field right-padded."""
    keys = [k for k in batch if k.startswith("history_")]
    moved = right_pad_rows([batch[k] for k in keys], batch["history_item"] != 0)
    return {**batch, **dict(zip(keys, moved))}


def run_model_test(
    model: keras.Model, x: Mapping[str, np.ndarray], y: np.ndarray, tmp_path: Any, loss: Any = "binary_crossentropy"
) -> None:
    """Prediction shape and range, config round trip, `fit`, `.keras` save ->
    load -> identical predictions, and (under tensorflow) SavedModel parity.
    """
    batch = len(y)
    prediction = model.predict(x, verbose=0)
    assert prediction.shape == (batch,) + tuple(model.output.shape[1:])
    assert prediction.dtype == np.float32
    assert np.all((prediction >= 0) & (prediction <= 1))

    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert clone.get_config() == config
    assert len(clone.weights) == len(model.weights)

    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), prediction, atol=1e-6)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        export_dir = os.path.join(str(tmp_path), "saved_model")
        model.export(export_dir, format="tf_saved_model", verbose=False)
        reloaded = tf.saved_model.load(export_dir)  # keep a reference: it owns the variables
        served = reloaded.serve({k: tf.constant(v) for k, v in x.items()})
        np.testing.assert_allclose(served.numpy(), prediction, atol=1e-5)

    model.compile(optimizer="adam", loss=loss)
    history = model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def assert_independent_initial_weights(model) -> None:
    """Every kernel and embedding table has its own initializer draw (a shared
    Keras 3 initializer instance had given all tables of a model the same rows
    and an MLP's kernels proportional values): no two are correlated."""
    weights = [(v.path, to_numpy(v).ravel()) for v in model.weights if v.path.endswith(("kernel", "embeddings"))]
    assert len(weights) > 2
    for i, (path_a, a) in enumerate(weights):
        for path_b, b in weights[i + 1 :]:
            k = min(a.size, b.size)
            if k >= 16:
                r = np.corrcoef(a[:k], b[:k])[0, 1]
                assert abs(r) < 0.9, (path_a, path_b, r)
