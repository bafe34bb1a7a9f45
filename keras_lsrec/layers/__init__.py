"""Reusable layers of long-sequence CTR models (keras + keras.ops only)."""

from keras_lsrec.layers.action_encoding import ActionEncoding
from keras_lsrec.layers.augru import AUGRU
from keras_lsrec.layers.bag_pooling import BagPooling
from keras_lsrec.layers.candidate_set_attention import CandidateSetAttention
from keras_lsrec.layers.cross_network import CrossNetwork
from keras_lsrec.layers.dcnv2_tower import DCNv2Tower
from keras_lsrec.layers.decoupled_embedding import DecoupledEmbedding
from keras_lsrec.layers.dice import Dice
from keras_lsrec.layers.embedding_table import EmbeddingTable
from keras_lsrec.layers.feature_gating import FeatureGating
from keras_lsrec.layers.field_embedding import FieldEmbedding
from keras_lsrec.layers.final_mlp_tower import FinalMLPTower
from keras_lsrec.layers.fourier_filter import FourierFilter
from keras_lsrec.layers.hstu_block import HSTUBlock
from keras_lsrec.layers.id_match_attention import IdMatchAttention
from keras_lsrec.layers.interaction_aggregation import InteractionAggregation
from keras_lsrec.layers.linear_cross_attention import LinearCrossAttention
from keras_lsrec.layers.mfalcon_mask import MFalconMask
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.layers.next_event_loss import NextEventLoss
from keras_lsrec.layers.relative_attention_bias import RelativeAttentionBias
from keras_lsrec.layers.row_features import RowFeatures
from keras_lsrec.layers.sim_hash import CollisionPooling, SimHash
from keras_lsrec.layers.sparse_attentive_memory import SparseAttentiveMemory
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.layers.transact_encoder import TransActEncoder

__all__ = [
    "AUGRU",
    "MLP",
    "ActionEncoding",
    "BagPooling",
    "CandidateSetAttention",
    "CollisionPooling",
    "CrossNetwork",
    "DCNv2Tower",
    "DecoupledEmbedding",
    "Dice",
    "EmbeddingTable",
    "FeatureGating",
    "FieldEmbedding",
    "FinalMLPTower",
    "FourierFilter",
    "HSTUBlock",
    "IdMatchAttention",
    "InteractionAggregation",
    "LinearCrossAttention",
    "NextEventLoss",
    "MFalconMask",
    "RelativeAttentionBias",
    "RowFeatures",
    "SimHash",
    "SparseAttentiveMemory",
    "TargetAttention",
    "TopKRetrieval",
    "TransActEncoder",
]
