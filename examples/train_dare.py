"""Train DARE with plain `fit` on synthetic long-sequence data and evaluate it.

KERAS_BACKEND=jax python examples/train_dare.py
"""

import keras

import keras_lsrec
from keras_lsrec.data import synthetic

data = synthetic.generate(num_users=2000, max_len=200)
model = keras_lsrec.models.DARE(data.schema, attention_dim=16, representation_dim=16, k=20)
model.compile(
    optimizer=keras.optimizers.Adam(0.005),
    loss="binary_crossentropy",
    metrics=[keras.metrics.AUC(name="auc")],
    jit_compile=keras.backend.backend() != "torch",
)
model.fit(
    data.train.x,
    data.train.y,
    batch_size=256,
    epochs=3,
    validation_data=(data.validation.x, data.validation.y),
)
print(keras_lsrec.metrics.evaluate(model, data.test.x, data.test.y, groups=data.test.users))
