"""keras_lsrec.serving.check: would the exported graph run on TF Serving's GPU build?"""

import importlib

import pytest
import tensorflow as tf

from keras_lsrec import serving

# The module (`serving.check` is the function).
check_module = importlib.import_module("keras_lsrec.serving.check")


def test_exported_model_passes_the_gpu_check(exported):
    _, _, path, _ = exported
    report = serving.check(path)
    assert report.ok and "XlaCallModule" not in report.ops and "TopKV2" in report.ops


@pytest.fixture
def cpu_bound(tmp_path):
    """A SavedModel with a node pinned to the CPU and an op (StringFormat) with CPU kernels only."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.float32)])
        def serve(self, x):
            with tf.device("/CPU:0"):
                y = x * 2.0
            label = tf.strings.format("{}", y)
            return {"y": y, "label": label}

    module = Module()
    path = str(tmp_path / "bad")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_check_flags_cpu_pinned_and_cpu_only_ops(cpu_bound):
    report = serving.check(cpu_bound, raise_on_error=False)
    assert any("pinned" in p for p in report.problems)
    assert any("StringFormat" in p for p in report.problems)
    with pytest.raises(serving.ServingCheckError, match="GPU"):
        serving.check(cpu_bound)


def test_check_without_the_kernel_registry_warns_and_runs_the_other_checks(cpu_bound, monkeypatch):
    # The kernel registry is read through TensorFlow's C API from its shared
    # libraries: a platform or release where they are not found must degrade to
    # a warning, never crash the check.
    monkeypatch.setattr(check_module, "_C_API_LIBRARIES", {})
    with pytest.warns(RuntimeWarning, match="kernel registry"):
        report = serving.check(cpu_bound, raise_on_error=False)
    assert any("pinned" in p for p in report.problems)
    assert not any("StringFormat" in p for p in report.problems)
    assert "StringFormat" in report.ops
    assert not report.kernels_checked


# --- every file problem names the file -------------------------------------------------------------


@pytest.fixture
def copy_of_export(exported, tmp_path):
    """A copy of an exported version, to break."""
    import shutil

    _, _, path, _ = exported
    return shutil.copytree(path, tmp_path / "1")


def data_shards(path):
    return sorted((path / "variables").glob("variables.data-*"))


def test_a_missing_variables_data_file_is_named(copy_of_export):
    (shard,) = data_shards(copy_of_export)
    shard.unlink()
    with pytest.raises(serving.ServingCheckError, match="no such file") as info:
        serving.check(str(copy_of_export))
    assert str(shard) in str(info.value)
    report = serving.check(str(copy_of_export), raise_on_error=False)
    assert len(report.problems) == 1 and str(shard) in report.problems[0]


def test_a_truncated_variables_data_file_is_named(copy_of_export):
    (shard,) = data_shards(copy_of_export)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(serving.ServingCheckError, match="cannot be read") as info:
        serving.check(str(copy_of_export))
    assert str(shard) in str(info.value)


def test_a_missing_variables_index_is_named(copy_of_export):
    index = copy_of_export / "variables" / "variables.index"
    index.unlink()
    with pytest.raises(serving.ServingCheckError, match="no such file") as info:
        serving.check(str(copy_of_export))
    assert str(index) in str(info.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_a_broken_saved_model_pb_is_named(damage, copy_of_export):
    graph = copy_of_export / "saved_model.pb"
    if damage == "missing":
        graph.unlink()
    else:
        graph.write_bytes(b"\xff\x00 garbage" * 10 if damage == "garbage" else graph.read_bytes()[:1000])
    with pytest.raises(serving.ServingCheckError) as info:
        serving.check(str(copy_of_export), raise_on_error=False)  # no graph to report on: raises anyway
    assert str(graph) in str(info.value)


def test_a_path_that_is_not_a_saved_model_is_named(tmp_path):
    with pytest.raises(serving.ServingCheckError, match="no such directory"):
        serving.check(str(tmp_path / "absent"))
    with pytest.raises(serving.ServingCheckError, match=r"saved_model\.pb: no such file"):
        serving.check(str(tmp_path))


def test_a_graph_without_variables_needs_no_variables_files(cpu_bound):
    report = serving.check(cpu_bound, raise_on_error=False)
    assert not any("variables" in p for p in report.problems), report.problems
