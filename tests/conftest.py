import keras
import numpy as np
import pytest

# tests/test_case.py holds the shared TestCase and helpers, not tests.
collect_ignore = ["test_case.py"]


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


def pytest_report_header(config):
    return f"keras backend: {keras.backend.backend()}"
