"""Functional long-sequence CTR models built from a `SequenceSchema`."""

from keras_lsrec.models.base import SequenceModel
from keras_lsrec.models.dare import DARE
from keras_lsrec.models.din import DIN
from keras_lsrec.models.ifa import IFA
from keras_lsrec.models.sam import SAM
from keras_lsrec.models.twin import TWIN

_MODELS = {cls.__name__.lower(): cls for cls in (DIN, TWIN, DARE, SAM, IFA)}


def get(name: str) -> type[SequenceModel]:
    """The model class registered under `name` (case-insensitive), e.g. `get("dare")`."""
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError(f"Unknown model {name!r}. Available: {sorted(_MODELS)}")
    return _MODELS[key]


__all__ = ["DARE", "DIN", "IFA", "SAM", "TWIN", "SequenceModel", "get"]
