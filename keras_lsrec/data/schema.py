"""The batch format shared by every model, and the schema that describes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import keras
import numpy as np

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.features import Categorical, Dense, Feature, feature_from_config

HISTORY_PREFIX = "history_"
"""Prefix of a history key: `history_<f>` `(B, L)` is field `f`'s behaviour sequence."""
TARGET_PREFIX = "target_"
"""Prefix of a target key: `target_<f>` `(B,)` or `(B, C)` is field `f` of the item(s) to score."""
TIME = "time"
CLUSTER_SIZE = "cluster_size"  # `history_cluster_size`: behaviours an event stands for (TWIN-V2)
ACTION = "action"  # `history_action`: what the user did with each event, a bitmask (HSTU)
MAX_ACTIONS = 30  # action kinds a schema may declare: bitmasks below 2^30 fit int32
VARIABLE = "variable"  # `candidates=VARIABLE`: a candidate axis of any size


def history_key(field: str) -> str:
    """The batch key of field `field`'s history: `history_key("item") == "history_item"`."""
    return HISTORY_PREFIX + field


def target_key(field: str) -> str:
    """The batch key of field `field`'s target: `target_key("item") == "target_item"`."""
    return TARGET_PREFIX + field


@keras_lsrec_export
class SequenceSchema:
    """Describes a batch of long behaviour sequences and builds its inputs.

    A batch is a dict of integer arrays. For every id field `f` (at least
    `item`, usually `category`, any others such as `shop`):

    - `target_<f>`: shape `(B,)`, the item to score (or `(B, C)` when the
      schema has `candidates`: a candidate set per request, id 0 marking a
      missing candidate in requests with fewer than C);
    - `history_<f>`: shape `(B, L)`, the behaviour sequence, most recent event
      last, left-padded with 0.

    With `time_vocab_size` set, `history_time` `(B, L)` carries a reverse
    position or bucketed time gap per event (the target implicitly has 0).
    With `cluster_sizes=True` the history is compressed (TWIN-V2): each event
    is a cluster of behaviours represented by one of them, and
    `history_cluster_size` `(B, L)` holds how many behaviours it stands for
    (>= 1 at every event, 0 at padding; `keras_lsrec.data.cluster_histories`
    writes it).
    With `actions=K`, `history_action` `(B, L)` says what the user did with
    each event: a bitmask of K action kinds in `[0, 2^K)` (bit k set: action
    k, e.g. KuaiRand's click 1, like 2, follow 4, ...; 0: none, e.g. an
    impression without a click). It exists for the history only: a
    candidate's action is what the model predicts, so the batch never
    carries it (`HSTU` reads it; the other models ignore it). Data with one
    action id per event maps it to a bitmask with one bit: `1 << (a - 1)` for
    ids from 1 (0 = no action), `1 << a` for ids from 0.
    Id 0 is padding in every field; the mask is `history_item != 0`. Ids of a
    field lie in `[0, vocab_sizes[f])`.

    The models accept any `L` at call time (the inputs have a dynamic length);
    `max_len` is the longest history the data helpers accept.

    Args:
        vocab_sizes: mapping field name -> vocabulary size (ids `0..size-1`,
            0 = padding). Must contain `"item"`.
        max_len: the longest history `L` the data may carry.
        candidates: `None` for one target per row; the number `C` of
            candidates per request (list-wise models such as `IFA`); or
            `"variable"` for a candidate axis whose size may change from batch
            to batch. Labels then have the targets' shape `(B, C)`, with -1
            where a candidate is missing (`target_item == 0`), the TF-Ranking
            convention that `keras_lsrec.losses.CandidateSetLoss` and the
            metrics follow.
        time_vocab_size: vocabulary size of `history_time`, or `None` when the
            batch has no time feature.
        cluster_sizes: whether the batch carries `history_cluster_size`.
        actions: the number of action kinds `K` (1 to 30) of
            `history_action`, or `None` when the batch has no actions.
        features: per-row features, `{name: Categorical(...) | Dense(...)}`
            (`keras_lsrec.data.features`): user profile and request context,
            one value per row (per request in a candidate set), batch key
            `name`: `(B,)` ids, `(B, M)` bags of ids padded with 0, or
            `(B, D)` float32. Every model feeds them to its tower. A schema
            without features is the schema, and the batch, of before.
        item_features: item-side features, `{name: Categorical(V,
            max_values=M) | Dense(D)}`: a bag of ids or a vector per item,
            attached to the target and to every event like the ids are:
            `target_<name>` `(B, M|D)` (`(B, C, M|D)` for candidate sets) and
            `history_<name>` `(B, L, M|D)`, zeros at padding. Every model
            adds them to the item representation its attention and search
            read, one block of its embedding size per feature (so their size
            is left unset). An item's single id (brand, shop) is an id field
            of `vocab_sizes`.

    Example:

    >>> schema = SequenceSchema({"item": 1000, "category": 20}, max_len=200)
    >>> sorted(schema.inputs())
    ['history_category', 'history_item', 'target_category', 'target_item']
    """

    def __init__(
        self,
        vocab_sizes: Mapping[str, int],
        max_len: int,
        candidates: int | Literal["variable"] | None = None,
        time_vocab_size: int | None = None,
        cluster_sizes: bool = False,
        features: Mapping[str, Any] | None = None,
        item_features: Mapping[str, Any] | None = None,
        actions: int | None = None,
    ) -> None:
        if not isinstance(vocab_sizes, Mapping) or "item" not in vocab_sizes:
            raise ValueError(
                "`vocab_sizes` must be a mapping that contains the field 'item'. "
                f"Received: vocab_sizes={vocab_sizes!r}"
            )
        for field, size in vocab_sizes.items():
            if not isinstance(field, str) or not field.isidentifier():
                raise ValueError(f"Field names must be identifiers. Received: field={field!r}")
            if field in (TIME, ACTION):
                option = "time_vocab_size" if field == TIME else "actions"
                raise ValueError(
                    f"The field name {field!r} is reserved for `history_{field}`; use `{option}` instead."
                )
            if not _is_int(size) or size < 2:
                raise ValueError(
                    f"Vocabulary size of field `{field}` must be an integer >= 2 "
                    f"(id 0 is padding). Received: {size!r}"
                )
        if not _is_int(max_len) or max_len < 1:
            raise ValueError(f"`max_len` must be a positive integer. Received: {max_len!r}")
        if candidates is not None and candidates != VARIABLE:
            if not _is_int(candidates) or int(candidates) < 1:
                raise ValueError(
                    f"`candidates` must be None, a positive integer or {VARIABLE!r}. Received: {candidates!r}"
                )
        if time_vocab_size is not None and (not _is_int(time_vocab_size) or time_vocab_size < 2):
            raise ValueError(
                f"`time_vocab_size` must be None or an integer >= 2. Received: {time_vocab_size!r}"
            )
        if not isinstance(cluster_sizes, (bool, np.bool_)):
            raise ValueError(f"`cluster_sizes` must be True or False. Received: {cluster_sizes!r}")
        if actions is not None and (not _is_int(actions) or not 1 <= actions <= MAX_ACTIONS):
            raise ValueError(
                f"`actions` must be None or the number of action kinds, an integer in [1, {MAX_ACTIONS}] "
                f"(`history_action` is a bitmask of them). Received: {actions!r}"
            )
        self.vocab_sizes = {str(k): int(v) for k, v in vocab_sizes.items()}
        self.max_len = int(max_len)
        self.candidates: int | str | None = (
            candidates if candidates is None or candidates == VARIABLE else int(candidates)
        )
        self.time_vocab_size = None if time_vocab_size is None else int(time_vocab_size)
        self.cluster_sizes = bool(cluster_sizes)
        self.actions = None if actions is None else int(actions)
        self.features: dict[str, Feature] = self._check_features(features or {})
        self.item_features: dict[str, Feature] = self._check_item_features(item_features or {})

    def _check_features(self, features: Mapping[str, Any]) -> dict[str, Feature]:
        if not isinstance(features, Mapping):
            raise ValueError(f"`features` must be a mapping name -> feature. Received: features={features!r}")
        checked = {}
        sequence_keys = {history_key(f) for f in (*self.vocab_sizes, TIME, CLUSTER_SIZE, ACTION)}
        sequence_keys |= {target_key(f) for f in self.vocab_sizes}
        for name, spec in features.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"Feature names must be identifiers. Received: {name!r}")
            if name in self.vocab_sizes or name in (TIME, CLUSTER_SIZE, ACTION):
                raise ValueError(
                    f"Feature name {name!r} is an id field of the sequences; give the per-row feature "
                    "another name."
                )
            if name.startswith((HISTORY_PREFIX, TARGET_PREFIX)) or name in sequence_keys:
                raise ValueError(
                    f"Feature name {name!r} would clash with the sequence keys "
                    f"(`{HISTORY_PREFIX}<f>`, `{TARGET_PREFIX}<f>`): name per-row features "
                    "without those prefixes."
                )
            try:
                checked[name] = feature_from_config(spec)
            except (TypeError, ValueError) as error:
                raise ValueError(f"features[{name!r}]: {error}") from None
        return checked

    def _check_item_features(self, features: Mapping[str, Any]) -> dict[str, Feature]:
        if not isinstance(features, Mapping):
            raise ValueError(
                f"`item_features` must be a mapping name -> feature. Received: item_features={features!r}"
            )
        checked: dict[str, Feature] = {}
        for name, spec in features.items():
            where = f"item_features[{name!r}]"
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"Item feature names must be identifiers. Received: {name!r}")
            if name in self.vocab_sizes or name in (TIME, CLUSTER_SIZE, ACTION) or name in self.features:
                raise ValueError(
                    f"Item feature name {name!r} is already taken (an id field, `time`, `cluster_size`, "
                    "`action` or a per-row feature); give it another name."
                )
            try:
                feature = feature_from_config(spec)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from None
            if isinstance(feature, Categorical) and feature.max_values is None:
                raise ValueError(
                    f"{where} is one id per item ({feature!r}): an item's single id (brand, shop) is an "
                    f"id field; add it to `vocab_sizes={{..., {name!r}: {feature.vocab_size}}}`. Item "
                    "features are bags (`max_values=M`) or vectors (`Dense(D)`)."
                )
            if feature.size is not None:
                raise ValueError(
                    f"{where} = {feature!r} sets its size; item features join the item representation "
                    "with the model's embedding size: leave `dim` / `output_dim` unset."
                )
            checked[name] = feature
        return checked

    # -- names -------------------------------------------------------------
    @property
    def fields(self) -> tuple[str, ...]:
        """The id fields, `item` first."""
        return ("item",) + tuple(f for f in self.vocab_sizes if f != "item")

    @property
    def has_time(self) -> bool:
        return self.time_vocab_size is not None

    @property
    def has_actions(self) -> bool:
        """Whether the batch carries `history_action`."""
        return self.actions is not None

    @property
    def has_candidates(self) -> bool:
        """Whether a row is a request with a candidate set `(B, C)`."""
        return self.candidates is not None

    @property
    def target_shape(self) -> tuple[int | None, ...]:
        """Shape of one `target_<f>` input without the batch axis."""
        if self.candidates is None:
            return ()
        return (self.candidates,) if isinstance(self.candidates, int) else (None,)  # int or VARIABLE

    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Per-key shapes without the batch axis (`None` = dynamic length)."""
        shapes: dict[str, tuple[int | None, ...]] = {}
        for field in self.fields:
            shapes[target_key(field)] = self.target_shape
        for field in self.fields:
            shapes[history_key(field)] = (None,)
        if self.has_time:
            shapes[history_key(TIME)] = (None,)
        if self.cluster_sizes:
            shapes[history_key(CLUSTER_SIZE)] = (None,)
        if self.actions is not None:
            shapes[history_key(ACTION)] = (None,)
        for name, feature in self.item_features.items():
            shapes[target_key(name)] = self.target_shape + feature.shape
        for name, feature in self.item_features.items():
            shapes[history_key(name)] = (None,) + feature.shape
        for name, feature in self.features.items():
            shapes[name] = feature.shape
        return shapes

    def feature(self, key: str) -> Feature | None:
        """The feature spec behind input `key` (a per-row feature's name, or
        `target_<f>` / `history_<f>` of an item feature); `None` for ids."""
        if key in self.features:
            return self.features[key]
        name = key.removeprefix(HISTORY_PREFIX).removeprefix(TARGET_PREFIX)
        return self.item_features.get(name) if name != key else None

    def is_dense(self, key: str) -> bool:
        """Whether input `key` holds float values (a `Dense` feature), not ids."""
        return isinstance(self.feature(key), Dense)

    def inputs(self, dtype: str = "int32") -> dict[str, keras.KerasTensor]:
        """The `keras.Input` dict of this batch format (dynamic history length);
        ids in `dtype`, dense features in float32."""
        return {
            name: keras.Input(shape=shape, dtype="float32" if self.is_dense(name) else dtype, name=name)
            for name, shape in self.input_shapes().items()
        }

    def vocab_size(self, key: str) -> int:
        """Vocabulary size behind an input key such as `history_category`."""
        feature = self.feature(key)
        if isinstance(feature, Categorical):
            return feature.vocab_size
        field = key.removeprefix(HISTORY_PREFIX).removeprefix(TARGET_PREFIX)
        if field == TIME:
            assert self.time_vocab_size is not None
            return self.time_vocab_size
        if field == ACTION:  # every bitmask of the action kinds
            assert self.actions is not None
            return 1 << self.actions
        return self.vocab_sizes[field]

    # -- validation --------------------------------------------------------
    def random_batch(
        self,
        rows: int,
        length: int | None = None,
        padded: bool = True,
        seed: int = 0,
        dtype: str = "int64",
        candidates: int = 10,
    ) -> dict[str, np.ndarray]:
        """A valid batch of random ids in this format (warm-up requests, benchmarks).

        Histories have `length` events (default `max_len`), left-padded to a
        random number of valid events per row when `padded`, full otherwise;
        `history_time` is the reverse position (capped to its vocabulary);
        `history_cluster_size` a size in 1..20 at every event;
        `history_action` any bitmask at every event.
        Candidate sets have the schema's C (`candidates` when it is
        `"variable"`); when `padded`, each request keeps a random number >= 1
        of them, the rest marked missing (id 0) at the end.
        """
        rng = np.random.default_rng(seed)
        length = self.max_len if length is None else length
        valid = rng.integers(1, length + 1, rows) if padded else np.full(rows, length)
        mask = np.arange(length)[None, :] >= (length - valid)[:, None]
        width = self.candidates if isinstance(self.candidates, int) else candidates
        kept = rng.integers(1, width + 1, rows) if padded else np.full(rows, width)
        target_mask = (np.arange(width)[None, :] < kept[:, None]) if self.has_candidates else True
        batch: dict[str, np.ndarray] = {}
        for name, feature in self.features.items():
            batch[name] = _random_feature(rng, feature, (rows,))
        target_rows = (rows, width) if self.has_candidates else (rows,)
        for name, feature in self.item_features.items():
            present = np.broadcast_to(target_mask, target_rows)
            batch[target_key(name)] = _random_feature(rng, feature, target_rows, present)
            batch[history_key(name)] = _random_feature(rng, feature, (rows, length), mask)
        for key, shape in self.input_shapes().items():
            if key in batch:
                continue
            elif key == history_key(CLUSTER_SIZE):
                batch[key] = np.where(mask, rng.integers(1, 21, (rows, length)), 0)
            elif key.startswith(HISTORY_PREFIX):
                low = 0 if key == history_key(ACTION) else 1  # no action is an action value
                ids = rng.integers(low, self.vocab_size(key), (rows, length))
                batch[key] = np.where(mask, ids, 0)
            else:
                ids = rng.integers(1, self.vocab_size(key), (rows,) + ((width,) if shape else ()))
                batch[key] = np.where(target_mask, ids, 0)
        if self.time_vocab_size is not None:
            reverse = np.minimum(np.arange(length, 0, -1), self.time_vocab_size - 1)[None, :]
            batch[history_key(TIME)] = np.where(mask, reverse, 0)
        return {key: value.astype("float32" if self.is_dense(key) else dtype) for key, value in batch.items()}

    def validate(self, batch: Mapping[str, Any], labels: Any = None) -> None:
        """Raise a `ValueError` naming the field if `batch` breaks the format.

        Checks: every key present and no unknown key; integer dtypes; ranks;
        one batch size; one history length, at most `max_len`; ids in
        `[0, vocab_size)` (`validate_ids`: the message names the first bad
        entry, e.g. `history_item[3, 7]`, and its value). With `labels`, also
        `validate_labels`.
        """
        if not isinstance(batch, Mapping):
            raise ValueError(
                f"A batch must be a dict of arrays keyed by input name. Received: {type(batch).__name__}"
            )
        expected = self.input_shapes()
        missing = [k for k in expected if k not in batch]
        if missing:
            raise ValueError(
                f"Missing field(s) {missing} in the batch. Expected keys: "
                f"{sorted(expected)}; received: {sorted(batch)}"
            )
        unknown = [k for k in batch if k not in expected]
        if unknown:
            raise ValueError(
                f"Unknown field(s) {unknown} in the batch; the schema expects "
                f"{sorted(expected)}. Remove them or add the field to the schema."
            )
        batch_size = None
        length = None
        for key, shape in expected.items():
            value = np.asarray(batch[key])
            if key not in self.features and self.feature(key) is not None:
                continue  # an item feature: checked below, against its item's ids
            if key in self.features:
                self._validate_feature(key, value)
                if batch_size is None:
                    batch_size = value.shape[0]
                elif value.shape[0] != batch_size:
                    raise ValueError(
                        f"`{key}` has batch size {value.shape[0]}, other fields have {batch_size}."
                    )
                continue
            self._check_integer(key, value, key)
            if value.ndim != len(shape) + 1:
                raise ValueError(
                    f"`{key}` must have rank {len(shape) + 1} (shape "
                    f"{('B',) + tuple('L' if d is None else d for d in shape)}). "
                    f"Received shape {value.shape}."
                )
            if batch_size is None:
                batch_size = value.shape[0]
            elif value.shape[0] != batch_size:
                raise ValueError(f"`{key}` has batch size {value.shape[0]}, other fields have {batch_size}.")
            if key.startswith(HISTORY_PREFIX):
                if length is None:
                    length = value.shape[1]
                elif value.shape[1] != length:
                    raise ValueError(
                        f"`{key}` has length {value.shape[1]}, other history fields have {length}."
                    )
                if value.shape[1] > self.max_len:
                    raise ValueError(
                        f"`{key}` has length {value.shape[1]} > max_len="
                        f"{self.max_len}. Keep the most recent events with "
                        "`pad_histories(..., truncate=True)` or raise `max_len`."
                    )
            elif shape and shape[0] is not None and value.shape[1] != shape[0]:
                raise ValueError(f"`{key}` must have {shape[0]} candidates. Received shape {value.shape}.")
            elif shape and value.shape != np.shape(batch[target_key("item")]):
                raise ValueError(
                    f"`{key}` has shape {value.shape}, `target_item` has "
                    f"{np.shape(batch[target_key('item')])}; every target field needs the same."
                )
            if key == history_key(CLUSTER_SIZE):
                self.validate_cluster_sizes(value, batch[history_key("item")])
            elif key == history_key(ACTION):
                self.validate_actions(value)
            else:
                self.validate_ids(key, value)
        for name in self.item_features:
            for key, item in (
                (target_key(name), target_key("item")),
                (history_key(name), history_key("item")),
            ):
                self._validate_feature(key, np.asarray(batch[key]), np.shape(batch[item]))
        if labels is not None:
            self.validate_labels(batch[target_key("item")], labels)

    def _validate_feature(self, key: str, value: np.ndarray, leading: tuple[int, ...] | None = None) -> None:
        """A feature: its shape (`leading` + the feature's: `(B,)` for a per-row
        feature, the shape of its item's ids for an item feature), then finite
        floats (`Dense`) or ids in its vocabulary (`Categorical`)."""
        feature = self.feature(key)
        assert feature is not None
        shape = feature.shape
        per = "row" if leading is None else "item"
        expected = ((value.shape[0] if value.ndim else None,) if leading is None else leading) + shape
        if value.shape != expected:
            kind = "a bag of up to" if isinstance(feature, Categorical) else "a vector of"
            hint = " (pad shorter bags with 0)" if isinstance(feature, Categorical) and shape else ""
            dims = ["B"] if leading is None else [str(d) for d in leading]
            raise ValueError(
                f"`{key}` must have shape ({', '.join([*dims, *map(str, shape)])})"
                + (f": {kind} {shape[0]} values per {per}{hint}" if shape else ": one id per row")
                + f". Received shape {value.shape}."
            )
        if isinstance(feature, Dense):
            if value.dtype.kind not in "biuf":
                raise ValueError(f"`{key}` must hold numbers (float32). Received dtype {value.dtype}.")
            finite = np.isfinite(value)
            if not finite.all():
                where = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ValueError(
                    f"`{key}` must be finite. Received {_index(key, where)} = {value[where].item()!r}."
                )
            return
        self.validate_ids(key, value)

    def validate_ids(self, key: str, values: Any, name: str | None = None) -> None:
        """Raise a `ValueError` unless `values` are integer ids of input `key`
        (such as `history_item`) in `[0, vocab_size)`.

        The message names the first bad entry as `name[index]` (`name`
        defaults to `key`; datasets pass where the array came from, e.g.
        `sequences['item']`) with its value and the vocabulary.
        """
        name = key if name is None else name
        value = np.asarray(values)
        self._check_integer(key, value, name)
        if not value.size:
            return
        vocab = self.vocab_size(key)
        # One pass in the common case: read as unsigned, a negative id is huge.
        unsigned = value.view(value.dtype.str.replace("i", "u")) if value.dtype.kind == "i" else value
        if int(unsigned.max()) < vocab:
            return
        field = key.removeprefix(HISTORY_PREFIX).removeprefix(TARGET_PREFIX)
        low, high = int(value.min()), int(value.max())
        if low < 0:
            where = _index(name, np.unravel_index(int(np.argmin(value)), value.shape))
            raise ValueError(
                f"`{name}` holds a negative id ({low}) at {where}: ids of field `{field}` lie in "
                f"[0, {vocab}) (0 is padding)."
            )
        if high >= vocab:
            where = _index(name, np.unravel_index(int(np.argmax(value)), value.shape))
            raise ValueError(
                f"`{name}` holds id {high} at {where}, outside the vocabulary [0, {vocab}) of field "
                f"`{field}`. Map unseen ids to an out-of-vocabulary id (`encode_ids`) or enlarge "
                "the vocabulary."
            )

    def validate_cluster_sizes(self, sizes: Any, history_item: Any, name: str | None = None) -> None:
        """Raise a `ValueError` naming the first bad entry unless `sizes` are
        integers below 2^31 (the models read int32), >= 1 at every event
        (`history_item != 0`) and >= 0 at padding."""
        name = history_key(CLUSTER_SIZE) if name is None else name
        value = np.asarray(sizes)
        self._check_integer(name, value, name)
        if value.shape != np.shape(history_item):
            raise ValueError(
                f"`{name}` must have the shape of `history_item`, {np.shape(history_item)}. "
                f"Received {value.shape}."
            )
        bad = (value < 0) | (value > 2**31 - 1) | ((value < 1) & (np.asarray(history_item) != 0))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"`{name}` holds {value[where].item()} at {_index(name, where)}: every event "
                "(history_item != 0) stands for 1 to 2^31 - 1 behaviours, padding for 0."
            )

    def validate_actions(self, actions: Any, name: str | None = None) -> None:
        """Raise a `ValueError` naming the first bad entry unless `actions` are
        integer bitmasks of the schema's `actions` kinds, in `[0, 2^actions)`."""
        name = history_key(ACTION) if name is None else name
        value = np.asarray(actions)
        self._check_integer(name, value, name)
        limit = self.vocab_size(history_key(ACTION))
        bad = (value < 0) | (value >= limit)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"`{name}` holds {value[where].item()} at {_index(name, where)}: an event's actions are "
                f"a bitmask of the schema's actions={self.actions} kinds, in [0, {limit}) (0: no action)."
            )

    @staticmethod
    def _check_integer(key: str, value: np.ndarray, name: str) -> None:
        if np.issubdtype(value.dtype, np.integer):
            return
        detail = ""
        if value.dtype.kind == "f" and value.size:
            fractional = ~np.isfinite(value) | (value != np.floor(np.nan_to_num(value)))
            first = int(np.argmax(fractional)) if fractional.any() else 0
            where = np.unravel_index(first, value.shape)
            detail = f": {_index(name, where)} = {value[where].item()!r}"
            if not fractional.any():
                detail += " (cast integral ids with `.astype('int32')`; a float is exact only up to 2^53)"
        raise ValueError(f"`{name}` must hold integer ids. Received dtype {value.dtype}{detail}.")

    def validate_labels(self, target_item: Any, labels: Any) -> None:
        """Raise a `ValueError` naming the first bad label (`labels[i]` and its value) unless:

        - labels have `target_item`'s shape: `(B,)` for one target per row,
          `(B, C)` for candidate sets;
        - they are finite numbers;
        - a real target's label is 0 or 1, and, in a candidate set, a missing
          candidate's (`target_item == 0`) is -1 exactly.
        """
        target = np.asarray(target_item)
        y = np.asarray(labels)
        if y.shape != target.shape:
            hint = ""
            if target.ndim == 1 and y.shape == target.shape + (1,):
                hint = " Flatten them with `labels.reshape(-1)`."
            raise ValueError(
                f"Labels must have the shape of `target_item`, {target.shape}. Received {y.shape}.{hint}"
            )
        if y.dtype.kind not in "biuf":
            raise ValueError(f"Labels must be numbers (0 or 1). Received dtype {y.dtype}.")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(y))[0])
            value = y[where].item()
            raise ValueError(f"Labels must be finite. Received {_index('labels', where)} = {value!r}.")
        present = target != 0 if self.has_candidates else np.ones(target.shape, bool)
        wrong = present & ~np.isin(y, (0, 1))
        if wrong.any():
            where = tuple(int(i) for i in np.argwhere(wrong)[0])
            raise ValueError(f"Labels must be 0 or 1. Received labels{list(where)} = {y[where].item()!r}.")
        missing = ~present & (y != -1)
        if missing.any():
            where = tuple(int(i) for i in np.argwhere(missing)[0])
            raise ValueError(
                f"labels{list(where)} = {y[where].item()!r}, but target_item{list(where)} = 0 marks a "
                "missing candidate: label missing candidates -1 so that losses and metrics skip them."
            )

    # -- serialization -----------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "vocab_sizes": dict(self.vocab_sizes),
            "max_len": self.max_len,
            "candidates": self.candidates,
            "time_vocab_size": self.time_vocab_size,
            "cluster_sizes": self.cluster_sizes,
        }
        if self.features:  # (absent otherwise: the config of a schema of before, unchanged)
            config["features"] = {name: f.get_config() for name, f in self.features.items()}
        if self.item_features:
            config["item_features"] = {name: f.get_config() for name, f in self.item_features.items()}
        if self.actions is not None:
            config["actions"] = self.actions
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SequenceSchema:
        return cls(**config)

    def replace(self, **changes: Any) -> SequenceSchema:
        """A copy with some arguments changed, e.g. `schema.replace(candidates=None)`."""
        return SequenceSchema(**{**self.get_config(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceSchema) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"SequenceSchema({args})"


def pad_histories(
    sequences: Sequence[Sequence[int]], max_len: int, truncate: bool = False, dtype: str = "int32"
) -> np.ndarray:
    """Left-pad id sequences (oldest first) with 0 into an `(N, max_len)` array of `dtype`.

    A sequence longer than `max_len` raises a `ValueError` unless
    `truncate=True`, which keeps its `max_len` most recent events. Ids must
    be integers (integral floats such as `3.0` are accepted) from 0 up to the
    largest value of `dtype`: a negative id, a fraction, a non-number or an
    id that `dtype` cannot hold (int32 by default: below 2^31) raises a
    `ValueError` naming the sequence, the position and the value; nothing is
    rounded or wrapped.

    An empty sequence (a new user) is a row of padding; `max_len=0` gives
    `(N, 0)` histories (the models accept them), and keeps nothing of a
    longer sequence only with `truncate=True`.
    """
    if not isinstance(max_len, (int, np.integer)) or isinstance(max_len, bool) or max_len < 0:
        raise ValueError(f"`max_len` must be an integer >= 0. Received: `max_len={max_len!r}`")
    if not isinstance(truncate, (bool, np.bool_)):
        raise ValueError(f"`truncate` must be True or False. Received: `truncate={truncate!r}`")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        out_dtype = np.dtype("O")
    if out_dtype.kind not in "iu":
        raise ValueError(f"`dtype` must be an integer dtype. Received: `dtype={dtype!r}`")
    if isinstance(sequences, (str, bytes, Mapping)) or not hasattr(sequences, "__iter__"):
        raise ValueError(f"`sequences` must be a list of id sequences. Received: {type(sequences).__name__}")
    if not hasattr(sequences, "__len__"):
        sequences = list(sequences)  # a generator
    high = int(np.iinfo(out_dtype).max)
    out = np.zeros((len(sequences), max_len), dtype=out_dtype)
    for row, sequence in enumerate(sequences):
        ids = _sequence_ids(sequence, row, high, out_dtype)
        if len(ids) > max_len:
            if not truncate:
                raise ValueError(
                    f"Sequence {row} has {len(ids)} events > max_len={max_len}. "
                    "Pass `truncate=True` to keep the most recent events."
                )
            ids = ids[len(ids) - max_len :]
        if len(ids):
            out[row, max_len - len(ids) :] = ids
    return out


def _sequence_ids(sequence: Any, row: int, high: int, dtype: np.dtype) -> np.ndarray:
    """One sequence as exact ids in [0, high], or a `ValueError` naming the row, position and value."""
    try:
        values = np.asarray(sequence)
    except (OverflowError, ValueError) as error:
        raise ValueError(f"Sequence {row} is not a list of ids ({error}).") from None
    if values.ndim != 1:
        raise ValueError(f"Sequence {row} must be a flat list of ids. Received shape {values.shape}.")
    if values.dtype.kind in "iu":
        bad = (values < 0) | (values > high)  # comparisons with Python ints are exact
    elif values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.floor(np.nan_to_num(values)))
        bad |= (values < 0) | (values > high)
    elif values.dtype == object:
        integer = [isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values]
        bad = np.array([not ok or not 0 <= v <= high for v, ok in zip(values, integer, strict=True)], bool)
    else:
        bad = np.ones(len(values), bool)
    if bad.any():
        position = int(np.argmax(bad))
        value = values[position]
        value = value.item() if isinstance(value, np.generic) else value
        raise ValueError(
            f"Sequence {row} holds {value!r} at position {position}: ids must be integers in "
            f"[0, {high}] (the range of dtype {dtype.name}). Remap large ids to 1..N first "
            "(`keras_lsrec.data.encode_ids`, or the loaders' vocabularies) or pass a wider `dtype`."
        )
    return values.astype(dtype)


def _random_feature(
    rng: np.random.Generator, feature: Feature, shape: tuple[int, ...], present: Any = True
) -> np.ndarray:
    """Random values of `feature` for entries of `shape`, zeros where not `present`:
    normal floats, ids in `[1, V)`, or bags of 0 to M such ids padded with 0 at the end."""
    values: np.ndarray
    if isinstance(feature, Dense):
        values = rng.normal(size=shape + (feature.dim,))
    elif feature.max_values is None:
        values = rng.integers(1, feature.vocab_size, shape)
    else:
        count = rng.integers(0, feature.max_values + 1, shape)
        ids = rng.integers(1, feature.vocab_size, shape + (feature.max_values,))
        values = np.where(np.arange(feature.max_values) < count[..., None], ids, 0)
    mask = np.asarray(present, bool)
    return np.where(mask[..., None] if values.ndim > len(shape) else mask, values, 0)


def _index(name: str, where: Sequence[Any]) -> str:
    """`name[i, j]`: an entry of an array, as messages name it."""
    return f"{name}[{', '.join(str(int(i)) for i in where)}]"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
