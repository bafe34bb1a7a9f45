"""Schema, batch format, data generators, real-data loaders and protocols."""

from keras_lsrec.data import synthetic
from keras_lsrec.data.clustering import attribute_vectors, cluster_histories
from keras_lsrec.data.dataset import ArrayDataset, SequenceDataset
from keras_lsrec.data.features import Categorical, Dense
from keras_lsrec.data.longctr import load_longctr, write_longctr_files
from keras_lsrec.data.protocol import candidate_windows, dare_protocol, leave_last_out, prepare
from keras_lsrec.data.readers import (
    LoadReport,
    encode_ids,
    load_amazon,
    load_kuairand,
    load_movielens,
    load_taobao,
    load_tmall,
    vocab_sizes,
)
from keras_lsrec.data.schema import (
    HISTORY_PREFIX,
    TARGET_PREFIX,
    SequenceSchema,
    history_key,
    pad_histories,
    target_key,
)

__all__ = [
    "HISTORY_PREFIX",
    "TARGET_PREFIX",
    "ArrayDataset",
    "Categorical",
    "Dense",
    "LoadReport",
    "SequenceDataset",
    "SequenceSchema",
    "attribute_vectors",
    "candidate_windows",
    "cluster_histories",
    "dare_protocol",
    "encode_ids",
    "history_key",
    "leave_last_out",
    "load_amazon",
    "load_kuairand",
    "load_longctr",
    "load_movielens",
    "load_taobao",
    "load_tmall",
    "pad_histories",
    "prepare",
    "synthetic",
    "target_key",
    "vocab_sizes",
    "write_longctr_files",
]
