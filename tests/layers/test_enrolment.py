"""Every public layer is enrolled in the layer contract: it has a test file
named after its module that runs `TestCase.run_layer_test` on it."""

import os
import re

import pytest

import keras_lsrec.layers

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("name", keras_lsrec.layers.__all__)
def test_public_layer_runs_the_layer_contract(name):
    cls = getattr(keras_lsrec.layers, name)
    module = cls.__module__.rsplit(".", 1)[-1]
    path = os.path.join(HERE, f"test_{module}.py")
    assert os.path.exists(path), f"{name}: no tests/layers/test_{module}.py"
    with open(path) as f:
        source = f.read()
    runs_contract = re.search(rf"run_layer_test\(\s*{name},", source)
    assert runs_contract, f"{name}: test_{module}.py never runs run_layer_test"
