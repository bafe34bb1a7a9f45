"""How models train: the trainer class, the per-backend steps, table rules.

One home for what happens between a batch and a weight update, so that no
model (and nothing under `keras_lsrec/models`) knows which backend runs it.
`Trainer` is the `keras.Model` every keras_lsrec model derives from: entry
point validation (`inputs`; under a `keras.distribution`, placement and batch
rows: `distributed`), row-sparse table training (`tables`, with the
row rules `RowSGD`, `RowAdagrad`, `RowAdam`), the backend's train step
(`steps`, one file per backend) and the auxiliary head (`AuxiliaryHead`).
The private Keras members it reads are listed in `keras_private`.
"""

from keras_lsrec.training.auxiliary import AuxiliaryHead
from keras_lsrec.training.tables import RowAdagrad, RowAdam, RowRule, RowSGD, TableTraining
from keras_lsrec.training.trainer import Trainer

__all__ = ["AuxiliaryHead", "RowAdagrad", "RowAdam", "RowRule", "RowSGD", "TableTraining", "Trainer"]
