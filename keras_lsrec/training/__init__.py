"""How models train: gradient mechanics, optimizers, auxiliary losses.

One home for what happens between a loss and a weight update, so that no
model (and nothing under `keras_lsrec/models`) knows which backend runs it.
`SequenceModel.compile` hands its optimizer to `prepare_optimizer` and sets
up row-sparse table training (`tables`, with its train steps in `steps`), and
`SequenceModel.compute_loss` adds the terms of its `AuxiliaryHead`.
"""

from keras_lsrec.training.auxiliary import AuxiliaryHead
from keras_lsrec.training.gradients import prepare_optimizer
from keras_lsrec.training.tables import RowAdagrad, RowAdam, RowRule, RowSGD

__all__ = ["AuxiliaryHead", "RowAdagrad", "RowAdam", "RowRule", "RowSGD", "prepare_optimizer"]
