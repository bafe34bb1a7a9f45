import keras
import numpy as np
import pytest

from keras_lsrec.data import synthetic

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


# Small data shared by the model and training tests: rows, and candidate sets of C = 6.
@pytest.fixture(scope="session")
def row_data():
    return synthetic.generate(
        num_users=24, examples_per_user=4, max_len=90, num_items=60, num_categories=8, seed=3
    )


@pytest.fixture(scope="session")
def candidate_data():
    return synthetic.generate(
        num_users=24,
        examples_per_user=3,
        max_len=90,
        num_items=60,
        num_categories=8,
        candidates=6,
        min_candidates=2,
        seed=4,
    )
