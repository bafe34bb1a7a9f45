"""Reusable layers of long-sequence CTR models (keras + keras.ops only)."""

from keras_lsrec.layers.bag_pooling import BagPooling
from keras_lsrec.layers.candidate_set_attention import CandidateSetAttention
from keras_lsrec.layers.decoupled_embedding import DecoupledEmbedding
from keras_lsrec.layers.dice import Dice
from keras_lsrec.layers.embedding_table import EmbeddingTable
from keras_lsrec.layers.field_embedding import FieldEmbedding
from keras_lsrec.layers.id_match_attention import IdMatchAttention
from keras_lsrec.layers.linear_cross_attention import LinearCrossAttention
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.layers.row_features import RowFeatures
from keras_lsrec.layers.sim_hash import CollisionPooling, SimHash
from keras_lsrec.layers.sparse_attentive_memory import SparseAttentiveMemory
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval

__all__ = [
    "MLP",
    "BagPooling",
    "CandidateSetAttention",
    "CollisionPooling",
    "DecoupledEmbedding",
    "Dice",
    "EmbeddingTable",
    "FieldEmbedding",
    "IdMatchAttention",
    "LinearCrossAttention",
    "RowFeatures",
    "SimHash",
    "SparseAttentiveMemory",
    "TargetAttention",
    "TopKRetrieval",
]
