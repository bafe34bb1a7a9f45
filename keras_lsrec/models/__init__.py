"""Functional long-sequence CTR models built from a `SequenceSchema`.

`get(name)` resolves a model class by name; a model registered here is
enrolled in every contract test (tests/models/test_contract.py).
`ROW` and `CANDIDATES` name the batch forms a class lists in `INPUT_FORMS`.
"""

from __future__ import annotations

from typing import Any, Protocol

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.dare import DARE
from keras_lsrec.models.dcnv2 import DCNv2
from keras_lsrec.models.dien import DIEN
from keras_lsrec.models.din import DIN
from keras_lsrec.models.eta import ETA
from keras_lsrec.models.finalmlp import FinalMLP
from keras_lsrec.models.hstu import HSTU
from keras_lsrec.models.ifa import IFA
from keras_lsrec.models.mirrn import MIRRN
from keras_lsrec.models.sam import SAM
from keras_lsrec.models.sdim import SDIM
from keras_lsrec.models.sim import SIM
from keras_lsrec.models.transact import TransAct
from keras_lsrec.models.twin import TWIN
from keras_lsrec.models.twinv2 import TWINV2


class ModelClass(Protocol):
    """A registered model class, as `get` returns it: `get(name)(schema, **hyperparameters)`.

    A `SequenceModel` subclass seen from outside: called with a schema and
    the model's own keyword hyper-parameters it builds the model (the graph
    arguments `inputs` / `outputs` of `SequenceModel.__init__` are the
    subclass's own business), and it carries the class-level data the library
    reads (`SEARCH_SPACE`, `INPUT_FORMS`, `READS_CLUSTERS`). At run time it is
    the class itself (`isinstance(model, get("dare"))` holds).
    """

    @property
    def SEARCH_SPACE(self) -> dict[str, tuple]: ...

    @property
    def INPUT_FORMS(self) -> tuple[str, ...]: ...

    @property
    def READS_CLUSTERS(self) -> bool: ...

    def __call__(self, schema: SequenceSchema, *args: Any, **hyperparameters: Any) -> SequenceModel: ...

    def check_schema(self, schema: Any) -> None: ...

    def from_config(self, config: dict[str, Any]) -> SequenceModel: ...


_MODELS: dict[str, ModelClass] = {
    cls.__name__.lower(): cls
    for cls in (
        DIN,
        TWIN,
        DARE,
        SAM,
        IFA,
        SIM,
        ETA,
        SDIM,
        TWINV2,
        DIEN,
        DCNv2,
        FinalMLP,
        TransAct,
        MIRRN,
        HSTU,
    )
}

QUICKSTART_MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("DIN@50", "din", {"history_window": 50}),
    ("DIN", "din", {}),
    ("TWIN", "twin", {}),
    ("DARE", "dare", {}),
    ("SAM", "sam", {}),
    ("SIM", "sim", {}),
    ("ETA", "eta", {}),
    ("SDIM", "sdim", {}),
    ("TWIN-V2", "twinv2", {}),  # on histories clustered in the data path (`SyntheticData.clustered`)
)
"""The models `lsrec quickstart` compares, as `(label, name, overrides)`: `get(name)(schema, **overrides)`."""


def get(name: str) -> ModelClass:
    """The model class registered under `name` (case-insensitive), e.g. `get("dare")`.

    Typed as a `ModelClass`, so `get(name)(schema, **hyperparameters)` type-checks.
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError(f"Unknown model {name!r}. Available: {sorted(_MODELS)}")
    return _MODELS[key]


def names() -> list[str]:
    """The registered model names, sorted: every name `get` resolves."""
    return sorted(_MODELS)


__all__ = [
    "CANDIDATES",
    "DARE",
    "DCNv2",
    "DIEN",
    "DIN",
    "ETA",
    "FinalMLP",
    "HSTU",
    "IFA",
    "MIRRN",
    "QUICKSTART_MODELS",
    "ROW",
    "SAM",
    "SDIM",
    "SIM",
    "TWIN",
    "TWINV2",
    "ModelClass",
    "TransAct",
    "SequenceModel",
    "get",
    "names",
]
