"""Without the serving extra, export and the gRPC client say which package is missing and how to get it."""

import os
import sys

import pytest

from keras_lsrec import serving
from keras_lsrec.models import DIN

HINT = 'pip install "keras-lsrec[serving]"'


@pytest.fixture
def model_file(data, tmp_path):
    path = str(tmp_path / "din.keras")
    DIN(data.schema, embedding_dim=4, attention_units=(8,), mlp_units=(8,)).save(path)
    return path


def test_export_without_tensorflow_serving_api_names_it_and_writes_nothing(model_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # as if not installed
    base = tmp_path / "saved_models" / "din"
    with pytest.raises(ImportError, match="tensorflow-serving-api, which is not installed") as info:
        serving.export(model_file, str(base))
    assert HINT in str(info.value) and info.value.name == "tensorflow_serving"
    assert not os.path.exists(tmp_path / "saved_models")  # refused before anything is written
    with pytest.raises(ImportError, match="tensorflow-serving-api") as info:
        serving.update_model_config(str(tmp_path / "models.config"), "dare")
    assert HINT in str(info.value) and not os.path.exists(tmp_path / "models.config")


def test_export_without_tensorflow_names_both(model_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    with pytest.raises(ImportError, match=r"needs tensorflow and tensorflow-serving-api, which are not") as e:
        serving.export(model_file, str(tmp_path / "din"))
    assert HINT in str(e.value) and not os.path.exists(tmp_path / "din")


def test_grpc_client_without_tensorflow_serving_api_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    with pytest.raises(ImportError, match=r"gRPC `Client` needs tensorflow-serving-api") as info:
        serving.Client("localhost:8500", "dare")
    assert HINT in str(info.value)
    assert serving.Client("http://localhost:8501", "dare").protocol == "rest"  # REST needs neither
