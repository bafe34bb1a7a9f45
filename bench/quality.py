"""Model quality: every model, several datasets, two budgets, several seeds. How defaults are chosen.

    python bench/quality.py                                   # everything (hours on 2 cores)
    python bench/quality.py --datasets synthetic200 --budgets quick --seeds 3
    python bench/quality.py --models 'DIN;DIN-noBN=din{"input_batch_norm": false}' --datasets synthetic200
    python bench/quality.py --load results.jsonl              # the tables of earlier runs, no training

Datasets (rows; users are split so no user is in two splits):

- `synthetic200`: the quickstart data (`lsrec quickstart`: 3,000 users x 8
  rows, L=200, data seed 0; the label depends on behaviours far back);
- `synthetic500`: the same generator at L=500 (`lsrec quickstart --full`'s
  length, 3,000 users);
- `ml-dare`: ../shared/data/ml-latest-small through `dare_protocol`
  (users with >= 210 ratings, L=200, 2 popularity negatives per positive);
- `ml-llo`: the same ratings through `leave_last_out` (every user, L=200,
  the latest 20 training positions per user, 1 negative per positive);
- `ml-dare-genres`, `ml-llo-genres`: the same with every genre of a movie as
  an item feature (a bag of up to 10 genre ids per item; `category` stays the
  first genre), on the target and on every event;
- `candidates200`: IFA's candidate sets (`examples/candidate_sets.py`'s
  data): the same generator with 3,000 users x 2 requests of C=20
  candidates (10-20 present), L=200. IFA trains on the requests with
  `CandidateSetLoss` (as many candidates per batch as the others' rows); the
  other models train on the same candidates flattened to rows, with BCE.

- `features200`: the synthetic200 users and rows with per-row features
  (`synthetic.generate(features=True)`: a user segment, a bag of user tags
  and a 4-float context per row, each with a planted effect on the label);
  `features200-off`: the same rows and labels without the feature keys (the
  schema of before), so the two give each model's AUC gain from the features.
- `items200`: the same with every kind of feature: the per-row ones and the
  item-side ones (`item_features=True`: a bag of topics and an 8-float image
  vector per item, on the target and on every event, the target's moving its
  label); `items200-off`: the same rows and labels without any feature key.

The MovieLens sets are skipped when ../shared/data is absent.

Budgets: `quick` = the quickstart's (Adam 0.005, batch 256, 3 epochs);
`converged` = up to 20 epochs with early stopping on the validation AUC
(patience 2, the best epoch's weights kept); "epochs" is the best epoch.

Models: the quickstart's list (`keras_lsrec.models.QUICKSTART_MODELS`) and IFA
by default, or `--models` entries separated by `;`, each `[LABEL=]NAME[JSON]`
with `NAME` a `keras_lsrec.models.get` name and `JSON` constructor
overrides, e.g. `SAM-big=sam{"attention_units": [80, 40]}`. TWIN-V2 reads
its histories clustered in the data path (`cluster_histories` on one-hot
category vectors of the items, grouped by category). IFA takes candidate
sets only, so it runs on `candidates200` only. Metrics on candidate sets
are taken over the present candidates, so every model is judged on the same
scores.

Every run appends one JSON line to `--save` (default
bench/results/quality.jsonl), so an interrupted sweep keeps what it did and
`--load` prints the tables of any set of runs: test AUC, GAUC and logloss as
mean ± sd over seeds, and the epochs to converge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from typing import Any, TypedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MOVIELENS = os.path.join(HERE, "..", "..", "shared", "data", "ml-latest-small", "ratings.csv")
DATASETS = (
    "synthetic200",
    "synthetic500",
    "ml-dare",
    "ml-llo",
    "ml-dare-genres",
    "ml-llo-genres",
    "candidates200",
    "features200",
    "features200-off",
    "items200",
    "items200-off",
)


class Budget(TypedDict):
    epochs: int  # at most
    patience: int | None  # early stopping on the validation AUC; None: train every epoch


BUDGETS: dict[str, Budget] = {
    "quick": {"epochs": 3, "patience": None},
    "converged": {"epochs": 20, "patience": 2},
}


def parse_models(text: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """`[(label, name, overrides)]` from `--models` (default: the quickstart's models)."""
    from keras_lsrec.models import QUICKSTART_MODELS

    if not text:
        zoo = (*QUICKSTART_MODELS, ("IFA", "ifa", {}))
        return [(label, name, dict(kwargs)) for label, name, kwargs in zoo]
    models = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        label, _, spec = entry.rpartition("=") if "=" in entry.split("{")[0] else ("", "", entry)
        name, brace, overrides = spec.partition("{")
        kwargs = json.loads(brace + overrides) if brace else {}
        models.append((label or spec, name.strip().lower(), kwargs))
    return models


def load(name: str) -> dict[str, Any] | None:
    """`{"schema", "train", "validation", "test"}`, each split `(x, y, users)`; None if absent."""
    from keras_lsrec.data import dare_protocol, leave_last_out, load_movielens, synthetic

    if name.startswith(("features", "items")):
        data = synthetic.generate(
            num_users=3000,
            examples_per_user=8,
            max_len=200,
            features=True,
            item_features=name.startswith("items"),
            seed=0,
        )
        off = name.endswith("-off")
        names = set(data.schema.features) | {
            key for f in data.schema.item_features for key in (f"target_{f}", f"history_{f}")
        }
        schema = data.schema.replace(features=None, item_features=None) if off else data.schema
        parts = {s: getattr(data, s) for s in ("train", "validation", "test")}
        out: dict[str, Any] = {"schema": schema}
        for split, part in parts.items():
            x = {k: v for k, v in part.x.items() if not (off and k in names)}
            out[split] = (x, part.y, part.users)
        return out
    if name.startswith("synthetic") or name.startswith("candidates"):
        requests = name.startswith("candidates")
        data = synthetic.generate(
            num_users=3000,
            examples_per_user=2 if requests else 8,
            max_len=int(name[len(name.rstrip("0123456789")) :]),
            candidates=20 if requests else None,
            min_candidates=10 if requests else None,
            seed=0,
        )
        parts = {s: getattr(data, s) for s in ("train", "validation", "test")}
        out = {"schema": data.schema, **{s: (p.x, p.y, p.users) for s, p in parts.items()}}
        if requests:  # the same candidates as rows, for the single-target models
            flat = {s: p.flatten() for s, p in parts.items()}
            out["rows"] = {"schema": data.schema.replace(candidates=None)}
            out["rows"].update({s: (p.x, p.y, p.users) for s, p in flat.items()})
        return out
    if not os.path.isfile(MOVIELENS):
        return None
    events = load_movielens(MOVIELENS, progress=False)
    genres = name.endswith("-genres")  # the movies' genres as an item feature (a bag per item)
    if name.startswith("ml-dare"):
        splits = dare_protocol(events, max_len=200, batch_size=256, item_features=genres)
    else:
        splits = leave_last_out(
            events, max_len=200, max_train_per_user=20, batch_size=256, item_features=genres
        )
    out = {"schema": splits["train"].schema}
    for split, dataset in splits.items():
        x, y = dataset.arrays()
        out[split] = (x, y, dataset.users)
    return out


def clustered(data: dict[str, Any]) -> dict[str, Any]:
    """The dataset with every history clustered for TWIN-V2."""
    from keras_lsrec.data import attribute_vectors, cluster_histories

    if "rows" in data:  # candidate sets: TWIN-V2 reads them as rows
        return {**data, "rows": clustered(data["rows"])}
    schema = data["schema"]
    vectors = attribute_vectors(data["train"][0], schema.vocab_sizes)
    out: dict[str, Any] = {"schema": schema.replace(cluster_sizes=True)}
    for split in ("train", "validation", "test"):
        x, y, users = data[split]
        out[split] = (cluster_histories(x, vectors, group_field="category"), y, users)
    return out


def validation_auc(x, y, users):
    """A callback writing `val_auc` (over present candidates for candidate sets) into the epoch's logs."""
    import keras

    from keras_lsrec import metrics

    class ValidationAUC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_auc"] = metrics.evaluate(self.model, x, y, users)["auc"]

    return ValidationAUC()


def run_one(data, label, name, kwargs, seed, budget, dataset, args) -> dict[str, Any]:
    import keras

    from keras_lsrec import metrics, models
    from keras_lsrec.data import ArrayDataset
    from keras_lsrec.losses import CandidateSetLoss

    cls = models.get(name)
    requests = data["schema"].has_candidates
    if requests and models.ROW in cls.INPUT_FORMS:
        data, requests = data["rows"], False  # a single-target model trains on the candidates as rows
    keras.utils.set_random_seed(seed)
    model = cls(data["schema"], **kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=CandidateSetLoss() if requests else "binary_crossentropy",
        jit_compile=keras.backend.backend() == "jax",  # as `lsrec quickstart`: XLA pays off on jax only
    )
    x, y, _ = data["train"]
    # A batch of requests holds about as many candidates as `batch_size` rows.
    batch_size = max(1, round(args.batch_size * len(y) / (y >= 0).sum())) if requests else args.batch_size
    train = ArrayDataset(x, y, batch_size, shuffle=True, seed=seed, schema=data["schema"])
    settings = BUDGETS[budget]
    callbacks = [validation_auc(*data["validation"])]
    if settings["patience"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=settings["patience"], restore_best_weights=True
            )
        )
    start = time.perf_counter()
    history = model.fit(train, shuffle=False, epochs=settings["epochs"], callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    val_auc = history.history["val_auc"]
    tx, ty, users = data["test"]
    result = metrics.evaluate(model, tx, ty, users)
    keras.backend.clear_session()
    return dict(
        dataset=dataset,
        budget=budget,
        model=label,
        name=name,
        overrides=kwargs,
        seed=seed,
        backend=keras.backend.backend(),
        auc=result["auc"],
        gauc=result["gauc"],
        logloss=result["logloss"],
        epochs=int(max(range(len(val_auc)), key=val_auc.__getitem__)) + 1,
        epochs_run=len(val_auc),
        seconds=seconds,
        date=time.strftime("%Y-%m-%d"),
    )


def summarise(records: list[dict[str, Any]]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["budget"], r["backend"], r["model"])].append(r)
    out = []
    for dataset, budget, backend in dict.fromkeys(k[:3] for k in groups):
        rows = []
        for (d, b, k, model), runs in groups.items():
            if (d, b, k) != (dataset, budget, backend):
                continue

            def stat(key: str, runs: list[dict[str, Any]] = runs) -> str:
                values = [r[key] for r in runs]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.mean(values):.4f} ± {sd:.4f}"

            epochs = "/".join(str(r["epochs"]) for r in runs)
            rows.append([model, len(runs), stat("auc"), stat("gauc"), stat("logloss"), epochs])
        out.append(f"\n#### {dataset}, {budget} budget, {backend}\n")
        out.append(common.markdown_table(["model", "seeds", "AUC", "GAUC", "logloss", "best epoch"], rows))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    parser.add_argument("--models", default=None, help="';'-separated [LABEL=]NAME[JSON] (default: the zoo)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--save", default=os.path.join(HERE, "results", "quality.jsonl"))
    parser.add_argument("--load", default=None, help="no training: print the tables of this JSON-lines file")
    args = parser.parse_args()
    if args.load:
        with open(args.load) as f:
            print(summarise([json.loads(line) for line in f if line.strip()]))
        return
    from keras_lsrec.models import ROW
    from keras_lsrec.models import get as models_get

    models = parse_models(args.models)
    os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
    print(f"Machine: {common.machine_line()}", flush=True)
    records = []
    for dataset in args.datasets.split(","):
        data = load(dataset)
        if data is None:
            print(f"{dataset}: skipped ({MOVIELENS} is absent)", flush=True)
            continue
        compressed = None
        for budget in args.budgets.split(","):
            for label, name, kwargs in models:
                cls = models_get(name)
                if "rows" not in data and ROW not in cls.INPUT_FORMS:
                    continue  # IFA: candidate sets only
                if cls.READS_CLUSTERS:
                    compressed = compressed or clustered(data)
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    record = run_one(
                        compressed if cls.READS_CLUSTERS else data,
                        label,
                        name,
                        kwargs,
                        seed,
                        budget,
                        dataset,
                        args,
                    )
                    records.append(record)
                    with open(args.save, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    print(
                        f"{dataset} {budget} {label} seed {seed}: AUC {record['auc']:.4f} "
                        f"(best epoch {record['epochs']}, {record['seconds']:.0f} s)",
                        flush=True,
                    )
    print(summarise(records))


if __name__ == "__main__":
    main()
