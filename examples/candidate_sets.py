"""IFA on candidate sets vs DIN@50 and full-sequence DIN, on synthetic data with a planted long-range signal.

    python examples/candidate_sets.py                 # 3000 users, L=200, C=20, 6 epochs
    KERAS_BACKEND=jax python examples/candidate_sets.py --users 1000 --epochs 3
    KERAS_BACKEND=jax python examples/candidate_sets.py --seeds 3      # mean ± sd over initial weights

Every example is a request: C candidates for one user (between C/2 and C
present, the rest marked missing). IFA scores the request in one pass and
trains with `CandidateSetLoss` (point-wise BCE + list-wise softmax CE). DIN
scores one candidate per row, so it trains and predicts on the same requests
flattened to rows (`Split.flatten()`), with BCE. All models see the same
candidates for the same number of epochs. The table reports AUC, GAUC (per
user) and logloss over the present candidates, and NDCG@10 per request.

"DIN (dot)" is full-sequence softmax attention with a scaled dot-product
scorer instead of DIN's MLP activation unit: the quadratic attention that
IFA's linear attention approximates. It separates what linearising costs
(IFA vs DIN (dot)) from what the scorer costs (DIN (dot) vs DIN).
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

from keras_lsrec import metrics
from keras_lsrec.data import synthetic
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import DIN, IFA


def evaluate_rows(model, split) -> dict[str, float]:
    """A single-target model's metrics on a candidate-set split (scores put back into the sets)."""
    flat = split.flatten()
    scores = np.full(split.y.shape, 0.0)
    scores[split.y >= 0] = model.predict(flat.x, batch_size=1024, verbose=0)
    return metrics.evaluate_scores(split.y, scores, split.users)


def run(data, epochs: int, batch_size: int, learning_rate: float, seed: int) -> dict[str, dict[str, float]]:
    """Trains the four models from initial-weight seed `seed`; test metrics per model."""
    flat_train, flat_validation = data.train.flatten(), data.validation.flatten()
    results: dict[str, dict[str, float]] = {}
    for name in ("DIN@50", "DIN", "DIN (dot)", "IFA"):
        keras.utils.set_random_seed(seed)
        optimizer = keras.optimizers.Adam(learning_rate)
        if name == "IFA":
            model = IFA(data.schema)
            model.compile(
                optimizer=optimizer, loss=CandidateSetLoss(), jit_compile=keras.backend.backend() == "jax"
            )
            # Requests per batch chosen so a batch holds about as many candidates as DIN's.
            per_batch = max(1, batch_size * len(data.train) // len(flat_train))
            model.fit(
                data.train.x,
                data.train.y,
                batch_size=per_batch,
                epochs=epochs,
                validation_data=(data.validation.x, data.validation.y),
                verbose=2,
            )
            results[name] = metrics.evaluate(model, data.test.x, data.test.y, data.test.users)
        else:
            rows_schema = data.schema.replace(candidates=None)
            model = DIN(
                rows_schema,
                history_window=50 if name == "DIN@50" else None,
                scorer="dot" if name == "DIN (dot)" else "mlp",
            )
            model.compile(
                optimizer=optimizer, loss="binary_crossentropy", jit_compile=keras.backend.backend() == "jax"
            )
            model.fit(
                flat_train.x,
                flat_train.y,
                batch_size=batch_size,
                epochs=epochs,
                validation_data=(flat_validation.x, flat_validation.y),
                verbose=2,
            )
            results[name] = evaluate_rows(model, data.test)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256, help="candidates per batch (rows for DIN)")
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    parser.add_argument(
        "--seeds", type=int, default=1, help="initial-weight seeds 0..N-1 (mean and sd when N > 1)"
    )
    args = parser.parse_args()
    data = synthetic.generate(
        num_users=args.users,
        examples_per_user=2,
        max_len=args.max_len,
        candidates=args.candidates,
        min_candidates=args.candidates // 2,
        seed=args.seed,
    )
    present = data.test.y >= 0
    bayes = metrics.auc(data.test.y[present], data.test.probability[present])
    print(
        f"{keras.backend.backend()}: {len(data.train)} training requests ({int((data.train.y >= 0).sum())} "
        f"candidates), L={args.max_len}, C={args.candidates}; Bayes-optimal test AUC {bayes:.4f}"
    )
    runs = [run(data, args.epochs, args.batch_size, args.learning_rate, seed) for seed in range(args.seeds)]
    print("\n| model | AUC | GAUC | logloss | NDCG@10 |\n| --- | --- | --- | --- | --- |")
    for name in runs[0]:
        cells = []
        for key in ("auc", "gauc", "logloss", "ndcg@10"):
            values = np.array([r[name][key] for r in runs])
            cells.append(f"{values.mean():.4f}" + (f" ± {values.std(ddof=1):.4f}" if len(values) > 1 else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"| (Bayes-optimal) | {bayes:.4f} | | | |")
    if args.seeds > 1:
        for name in runs[0]:
            print(f"{name} AUC per seed: {[round(r[name]['auc'], 4) for r in runs]}")


if __name__ == "__main__":
    main()
