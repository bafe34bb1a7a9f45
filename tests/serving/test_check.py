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
