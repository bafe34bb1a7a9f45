"""Functional long-sequence CTR models built from a `SequenceSchema`.

`get(name)` resolves a model class by name; a model registered here is
enrolled in every contract test (tests/models/test_contract.py).
"""

from keras_lsrec.models.base import SequenceModel
from keras_lsrec.models.dare import DARE
from keras_lsrec.models.din import DIN
from keras_lsrec.models.eta import ETA
from keras_lsrec.models.ifa import IFA
from keras_lsrec.models.sam import SAM
from keras_lsrec.models.sdim import SDIM
from keras_lsrec.models.sim import SIM
from keras_lsrec.models.twin import TWIN
from keras_lsrec.models.twinv2 import TWINV2

_MODELS: dict[str, type[SequenceModel]] = {
    cls.__name__.lower(): cls for cls in (DIN, TWIN, DARE, SAM, IFA, SIM, ETA, SDIM, TWINV2)
}


def get(name: str) -> type[SequenceModel]:
    """The model class registered under `name` (case-insensitive), e.g. `get("dare")`."""
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError(f"Unknown model {name!r}. Available: {sorted(_MODELS)}")
    return _MODELS[key]


def names() -> list[str]:
    """The registered model names, sorted: every name `get` resolves."""
    return sorted(_MODELS)


__all__ = [
    "DARE",
    "DIN",
    "ETA",
    "IFA",
    "SAM",
    "SDIM",
    "SIM",
    "TWIN",
    "TWINV2",
    "SequenceModel",
    "get",
    "names",
]
