"""Per-row features beside the behaviour sequence: user profile and request context.

A schema's `features={name: spec}` adds one batch key per feature, one value
per row (per request in a candidate set):

- `Categorical(vocab_size)`: an id in `[0, vocab_size)` per row, `(B,)`
  (user id, age bucket, device, hour...); 0 is the unknown value;
- `Categorical(vocab_size, max_values=M)`: a bag of up to M ids per row,
  `(B, M)`, padded with 0 (user tags, interests); an empty bag is all zeros;
- `Dense(dim)`: `dim` float32 values per row, `(B, dim)` (a user embedding,
  normalised counters), finite.

Each spec may say how large its learned representation is (`dim` for a
categorical feature, `output_dim` for a dense one; 16 when left unset): the
tower reads the concatenation of the features' representations
(`keras_lsrec.layers.RowFeatures`).

The same specs describe item-side features (`SequenceSchema(item_features=...)`):
a bag of ids or a vector per item, attached to the target and to every history
event (`target_<name>`, `history_<name>`). Those join the item representation,
so their size is the model's embedding size and is left unset.
"""

from __future__ import annotations

from typing import Any

from keras_lsrec.validation import _refuse

DEFAULT_DIM = 16


def _check_int(name: str, value: Any, low: int) -> int:
    """`value` as an int, refused (naming it) unless an integer >= `low`
    (numpy integers accepted, bools refused)."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < low:
        raise _refuse(name, f"an integer >= {low}", value)
    return int(value)


class Categorical:
    """A categorical per-row feature: one id `(B,)`, or a bag of up to
    `max_values` ids `(B, max_values)` padded with 0.

    Args:
        vocab_size: ids lie in `[0, vocab_size)`; 0 is padding / unknown.
        max_values: `None` for one id per row; M for a bag of up to M ids.
        dim: size of the id embedding (a bag is the mean of its ids'
            embeddings); `None`: 16 for a per-row feature, the model's
            embedding size for an item feature.
    """

    def __init__(self, vocab_size: int, max_values: int | None = None, dim: int | None = None) -> None:
        self.vocab_size = _check_int("vocab_size", vocab_size, 2)
        self.max_values = None if max_values is None else _check_int("max_values", max_values, 1)
        self.dim = None if dim is None else _check_int("dim", dim, 1)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one row's value."""
        return () if self.max_values is None else (self.max_values,)

    @property
    def dtype(self) -> str:
        return "int32"

    @property
    def size(self) -> int | None:
        """The representation size asked for (`None`: the default of where it is used)."""
        return self.dim

    def encoded_dim(self, default: int = DEFAULT_DIM) -> int:
        """The size of the feature's learned representation: `dim`, or `default` when unset."""
        return default if self.dim is None else self.dim

    def get_config(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "vocab_size": self.vocab_size,
            "max_values": self.max_values,
            "dim": self.dim,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Categorical) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"Categorical({self.vocab_size}, max_values={self.max_values}, dim={self.dim})"


class Dense:
    """A dense per-row feature: `dim` finite float32 values per row, `(B, dim)`,
    projected to `output_dim` by a learned linear map.

    Args:
        dim: values per row.
        output_dim: size of the learned projection; `None`: 16 for a
            per-row feature, the model's embedding size for an item feature.
    """

    def __init__(self, dim: int, output_dim: int | None = None) -> None:
        self.dim = _check_int("dim", dim, 1)
        self.output_dim = None if output_dim is None else _check_int("output_dim", output_dim, 1)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def dtype(self) -> str:
        return "float32"

    @property
    def size(self) -> int | None:
        """The representation size asked for (`None`: the default of where it is used)."""
        return self.output_dim

    def encoded_dim(self, default: int = DEFAULT_DIM) -> int:
        """The size of the projection: `output_dim`, or `default` when unset."""
        return default if self.output_dim is None else self.output_dim

    def get_config(self) -> dict[str, Any]:
        return {"kind": "dense", "dim": self.dim, "output_dim": self.output_dim}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dense) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"Dense({self.dim}, output_dim={self.output_dim})"


Feature = Categorical | Dense


def feature_from_config(config: Any) -> Feature:
    """A feature spec from its `get_config()` (or the spec itself)."""
    if isinstance(config, (Categorical, Dense)):
        return config
    if not isinstance(config, dict) or config.get("kind") not in ("categorical", "dense"):
        raise ValueError(
            "A feature is `Categorical(vocab_size, max_values=None, dim=None)` or "
            "`Dense(dim, output_dim=None)`. "
            f"Received: {config!r}"
        )
    options = {k: v for k, v in config.items() if k != "kind"}
    return Categorical(**options) if config["kind"] == "categorical" else Dense(**options)
