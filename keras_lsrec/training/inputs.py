"""Input validation at the model's entry points, whatever the input type.

`validated(x, schema)` checks a dict batch at once and wraps any other input
(a `keras.utils.PyDataset`, a `tf.data.Dataset`, a generator) so that every
batch it yields is checked by name against the schema before the model sees
it (`SequenceSchema.validate`, and `validate_labels` for the labels): ids
outside the vocabulary, negative or float ids, a missing or unknown key
(inputs are selected by name, never by position), labels that are not 0/1.
The keras_lsrec datasets (`ArrayDataset`, `SequenceDataset`) check their
contents once when they are built, against their own schema: they pass
through unwrapped only when that check also proves the model's schema
(`ShuffledBatches.check_schema`: the same keys and forms, no vocabulary
larger than the model's, no longer `max_len`); otherwise their contents are
checked against the model's schema at once (a `ValueError` naming the field,
the entry and the value), so a dataset built without `schema=`, or with
another model's, never feeds an id outside the model's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.training.distributed import check_batch_rows


def check_batch(schema: SequenceSchema, x: Any, y: Any = None) -> None:
    """Validates one batch: `x` must be a dict named by the schema; `y`, when
    given, labels of `x["target_item"]`'s shape ((B,) rows may also be (B, 1))."""
    if not isinstance(x, Mapping):
        raise ValueError(
            "keras_lsrec models take a dict batch keyed by name "
            f"({sorted(schema.input_shapes())}). Received a {type(x).__name__}."
        )
    schema.validate(x)
    if y is None or not hasattr(y, "shape"):
        return
    labels = np.asarray(y)
    if not schema.has_candidates and labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    schema.validate_labels(x["target_item"], labels)


def _check_element(schema: SequenceSchema, element: Any, divisor: int = 1, where: str = "A batch") -> Any:
    """Checks a `(x,)`, `(x, y)` or `(x, y, sample_weight)` element; returns it
    unchanged. Under a distribution that splits a batch in `divisor` parts,
    its rows must be a multiple of `divisor` (`keras_lsrec.training.distributed`)."""
    x = element[0] if isinstance(element, tuple) else element
    if isinstance(element, tuple):
        check_batch(schema, x, element[1] if len(element) > 1 else None)
    else:
        check_batch(schema, x)
    check_batch_rows(len(x["target_item"]), divisor, where)
    return element


class _ValidatedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches are checked before the model sees them."""

    def __init__(self, dataset: keras.utils.PyDataset, schema: SequenceSchema, divisor: int = 1) -> None:
        super().__init__(
            workers=dataset.workers,
            use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.schema = schema
        self.divisor = divisor

    @property
    def num_batches(self) -> int | None:
        return self.dataset.num_batches

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        where = f"Batch {index} of this {type(self.dataset).__name__}"
        return _check_element(self.schema, self.dataset[index], self.divisor, where)

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()


def _validated_generator(generator: Iterator[Any], schema: SequenceSchema, divisor: int = 1) -> Iterator[Any]:
    # the first batch now, before Keras starts (see `validated`)
    first = _check_element(schema, next(generator), divisor, "Batch 0 of the generator")

    def checked() -> Iterator[Any]:
        yield first
        for index, element in enumerate(generator, 1):
            yield _check_element(schema, element, divisor, f"Batch {index} of the generator")

    return checked()


def _validated_tf_dataset(dataset: Any, schema: SequenceSchema, divisor: int = 1) -> Any:
    """The names, dtypes and ranks of a `tf.data.Dataset` are checked now, from
    its `element_spec`; the id values of every batch as it streams (a numpy
    check inside the pipeline)."""
    import tensorflow as tf  # tf.data is tensorflow's: this branch is the only one that needs it

    spec = dataset.element_spec
    x_spec = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(x_spec, Mapping):
        raise ValueError(
            "keras_lsrec models take a dict batch keyed by name "
            f"({sorted(schema.input_shapes())}). This tf.data.Dataset yields {x_spec}."
        )
    example = {
        name: np.zeros([1 if d is None else d for d in s.shape], s.dtype.as_numpy_dtype)
        for name, s in x_spec.items()
    }
    schema.validate(example)  # names, dtypes and ranks, before any data is read
    for element in dataset.take(1):  # the first batch's values, before Keras starts
        first = tf.nest.map_structure(lambda t: t.numpy(), element)
        _check_element(schema, first, divisor, "Batch 0 of the tf.data.Dataset")

    def check(*element: Any) -> Any:
        def numpy_check(*flat: Any) -> bool:
            arrays = tf.nest.pack_sequence_as(element, [np.asarray(a) for a in flat])
            batch = tuple(arrays) if isinstance(arrays, (tuple, list)) else arrays
            _check_element(schema, batch, divisor, "A batch of the tf.data.Dataset")
            return True

        ok = tf.numpy_function(numpy_check, tf.nest.flatten(element), tf.bool, stateful=True)
        with tf.control_dependencies([ok]):
            checked = tf.nest.map_structure(tf.identity, element)
        return checked if len(element) > 1 else checked[0]

    return dataset.map(check)


def validated(x: Any, schema: SequenceSchema, y: Any = None, divisor: int = 1) -> Any:
    """`x` checked (a dict) or wrapped so that every batch is checked (a
    `PyDataset`, a `tf.data.Dataset`, a generator); see the module docstring.

    The first batch of a stream is checked at once, before Keras starts: on
    jax, Keras releases the model's variables into its training state when an
    epoch begins and does not restore them when a batch raises, so an error
    from a later batch leaves the model unusable there (reload a checkpoint).
    A wrong key or a mapping bug shows in the first batch, with the model intact.
    `divisor`: under a distribution, the number every batch's rows must be a
    multiple of (`keras_lsrec.training.distributed`; checked per batch here
    for streams, at once for arrays and keras_lsrec datasets by the caller).
    """
    from keras_lsrec.data.dataset import ShuffledBatches

    if isinstance(x, Mapping):
        check_batch(schema, x, y)
        return x
    if isinstance(x, ShuffledBatches) and x.check_schema(schema):
        return x  # every batch follows the schema: checked when built, or just now, whole
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches is None or x.num_batches > 0:
            # now, before Keras starts (see above)
            _check_element(schema, x[0], divisor, f"Batch 0 of this {type(x).__name__}")
        return _ValidatedPyDataset(x, schema, divisor)
    if type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec"):
        return _validated_tf_dataset(x, schema, divisor)
    if isinstance(x, Iterator):
        return _validated_generator(x, schema, divisor)
    return x
