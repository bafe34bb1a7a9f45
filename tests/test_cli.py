"""The `lsrec quickstart` command end to end on tiny data."""

import json

from keras_lsrec import cli


def test_quickstart_runs_and_prints_the_table(capsys):
    assert cli.main(["quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    for label in ("| DIN@50 |", "| DIN |", "| TWIN |", "| DARE |", "Bayes-optimal"):
        assert label in out


def test_quickstart_json_record_and_init_seed(tmp_path):
    def run(init_seed, *extra):
        path = tmp_path / f"{init_seed}.json"
        argv = ["quickstart", "--users", "60", "--epochs", "1", "--batch-size", "64", "--models", "din@50"]
        assert cli.main(argv + ["--init-seed", str(init_seed), "--json", str(path), *extra]) == 0
        return json.loads(path.read_text())

    first, again, other = run(1), run(1), run(2)
    assert first["init_seed"] == 1 and first["seed"] == 0 and list(first["models"]) == ["DIN@50"]
    assert set(first["models"]["DIN@50"]) == {"auc", "gauc", "logloss", "samples_per_s"}
    assert first["models"]["DIN@50"]["auc"] == again["models"]["DIN@50"]["auc"]  # same seeds, same run
    assert first["models"]["DIN@50"]["auc"] != other["models"]["DIN@50"]["auc"]  # other initial weights
    assert first["bayes_auc"] == other["bayes_auc"]  # ... on the same data
    # --same-start: the first run saves its initial weights, the next loads them.
    start = tmp_path / "start"
    saved = run(1, "--same-start", str(start))
    assert (start / "din_50.weights.h5").exists()
    loaded = run(1, "--same-start", str(start))
    assert (
        saved["models"]["DIN@50"]["auc"]
        == loaded["models"]["DIN@50"]["auc"]
        == first["models"]["DIN@50"]["auc"]
    )
