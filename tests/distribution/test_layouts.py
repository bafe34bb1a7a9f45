"""keras_lsrec.distribution in one process: the layout map, process shards,
padded stores, and the refusal of a distribution Keras would not carry out."""

import keras
import numpy as np
import pytest

import keras_lsrec
from keras_lsrec.data import synthetic
from keras_lsrec.distribution import layout_map, process_shard
from keras_lsrec.layers.mesh_padding import PaddedRowsStore

JAX = keras.backend.backend() == "jax"


@pytest.fixture
def data():
    return synthetic.generate(
        num_users=30, examples_per_user=3, max_len=90, num_items=60, num_categories=8, seed=1
    )


@pytest.mark.skipif(not JAX, reason="keras.distribution meshes exist on jax")
def test_layout_map_row_shards_every_table_and_nothing_else():
    mesh = keras.distribution.DeviceMesh((1, 1), ["data", "model"], keras.distribution.list_devices()[:1])
    layouts = layout_map(mesh)
    for path in [
        "embedding/item_embedding/embeddings",
        "embedding/attention/time_embedding/embeddings",  # DARE's tables, the time table
        "embeddings",
    ]:
        assert tuple(layouts[path].axes) == ("model", None), path
    for path in ["tower/dense_0/kernel", "embedding/item_embedding/output", "attention/score_kernel"]:
        assert layouts[path] is None, path  # replicated by ModelParallel
    with pytest.raises(ValueError, match="'shard'.*\\['data', 'model'\\]"):
        layout_map(mesh, model_axis="shard")


@pytest.mark.skipif(JAX, reason="refusal off jax")
def test_off_jax_a_distribution_is_refused_not_run_on_one_device(data):
    with pytest.raises(ValueError, match=f"jax backend.*{keras.backend.backend()}"):
        layout_map(None)
    with pytest.raises(ValueError, match="jax backend"):
        process_shard(data.sequence_dataset("train"))  # no process index to read off jax
    if keras.backend.backend() != "tensorflow":
        return  # torch: Keras 3.15 cannot even build a DataParallel
    model = keras_lsrec.models.DIN(data.schema)
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        with pytest.raises(ValueError, match="jax backend.*'tensorflow'"):
            model.compile("adam", "binary_crossentropy")
    finally:
        keras.distribution.set_distribution(None)


def test_process_shards_are_disjoint_cover_every_example_and_step_together(data):
    whole = data.sequence_dataset("train", batch_size=7)
    x, y = whole.arrays()
    key = lambda batch, i: (int(batch["target_item"][i]), tuple(batch["history_item"][i]))  # noqa: E731
    everything = sorted(key(x, i) for i in range(len(y)))
    for count in (1, 2, 3):
        exact = [process_shard(whole, i, count) for i in range(count)]
        users = [set(s.examples["user"].tolist()) for s in exact]
        assert all(a.isdisjoint(b) for i, a in enumerate(users) for b in users[i + 1 :])
        got = []
        for s in exact:
            xs, _ = s.arrays()
            got += [key(xs, i) for i in range(s.num_examples)]
        assert sorted(got) == everything
        even = [whole.shard(i, count) for i in range(count)]
        largest = max(s.num_examples for s in exact)
        assert {s.num_examples for s in even} == {largest} and {len(s) for s in even} == {len(even[0])}
        assert [s.repeated for s in even] == [largest - s.num_examples for s in exact]
    # The splits of a protocol shard alike; the shards are the same on every call.
    splits = process_shard({"train": whole, "test": data.sequence_dataset("test")}, 1, 2)
    assert set(splits) == {"train", "test"} and all(
        s.examples["user"].min() % 2 == 1 for s in splits.values()
    )
    np.testing.assert_array_equal(splits["train"].examples["end"], whole.shard(1, 2).examples["end"])
    if JAX:  # one process: the whole dataset
        assert process_shard(whole).num_examples == whole.num_examples


def test_bad_shards_are_refused_with_their_values(data):
    whole = data.sequence_dataset("train")
    cases = [(2, 2, "index=2, count=2"), (0, 0, "count=0"), (-1, 2, "index=-1"), (0, True, "count=True")]
    for index, count, message in cases:
        with pytest.raises(ValueError, match=message):
            whole.shard(index, count)
    with pytest.raises(ValueError, match="Shard 30 of 31 holds no example"):
        whole.shard(30, 31)
    with pytest.raises(TypeError, match="SequenceDataset.*ndarray"):
        process_shard(np.zeros(3), 0, 2)


def test_sequence_dataset_of_synthetic_data_equals_its_arrays(data):
    dataset = data.sequence_dataset("validation", batch_size=1000)
    x, y = dataset[0]
    assert set(x) == set(data.validation.x)
    for name, values in data.validation.x.items():
        np.testing.assert_array_equal(x[name], values, err_msg=name)
    np.testing.assert_array_equal(y, data.validation.y)


def test_padded_rows_store_writes_the_real_rows_and_reads_them_padded():
    store: dict = {}
    padded = PaddedRowsStore(store, {"0": (3, 4), "1": (5, 5)})
    table, other = np.arange(8.0).reshape(4, 2), np.ones((5, 2))
    padded["0"], padded["1"] = table, other
    np.testing.assert_array_equal(store["0"], table[:3])  # the padding row is not written
    np.testing.assert_array_equal(store["1"], other)
    np.testing.assert_array_equal(padded["0"], np.concatenate([table[:3], np.zeros((1, 2))]))
    assert len(padded) == 2 and sorted(padded) == ["0", "1"]
    store["0"] = np.ones((4, 2))  # a file of another layout is passed through for assign to refuse
    assert padded["0"].shape == (4, 2)
