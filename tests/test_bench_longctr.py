"""bench/longctr.py runs LongCTR's protocol end to end on a tiny generated set (no peer)."""

import importlib.util
import json
import os
import sys

import keras
from test_case import only_under

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))  # the script's own imports (common, run)
    spec = importlib.util.spec_from_file_location("bench_longctr", os.path.join(ROOT, "bench", "longctr.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@only_under("tensorflow", why="the protocol's script; one backend path is enough")
def test_longctr_protocol_runs_on_generated_files(tmp_path, monkeypatch, capsys):
    backend = keras.backend.backend()
    save = tmp_path / "results.jsonl"
    script = load_script(monkeypatch)
    arguments = [
        *("--generate", "600", "--models", "din", "--max-len", "20", "--variants", "defaults"),
        *("--epochs", "1", "--batch-size", "128", "--embedding-dim", "4", "--backend", backend),
        *("--verbose", "0", "--save", str(save), "--in-process"),
    ]
    monkeypatch.setattr(sys, "argv", ["longctr.py", *arguments])
    script.main()
    out = capsys.readouterr().out
    (record,) = [json.loads(line) for line in save.read_text().splitlines()]
    assert record["library"] == "keras_lsrec" and record["backend"] == backend
    assert record["model"] == "din" and record["length"] == 20 and record["epochs_run"] == 1
    assert 0.0 <= record["auc"] <= 1.0 and 0.0 <= record["gauc"] <= 1.0 and record["logloss"] > 0
    assert "| DIN | 20 | keras_lsrec |" in out
    assert "| fuxictr |" not in out


@only_under("tensorflow", why="a table of the script; backend-independent")
def test_parity_table_states_the_gap_and_the_bar(monkeypatch):
    script = load_script(monkeypatch)

    def run(library, variant, auc):
        return dict(
            dataset="d", length=100, model="din", library=library, backend="b", variant=variant, auc=auc
        )

    groups = {}
    for record in [run("fuxictr", "fuxictr", 0.77), run("fuxictr", "fuxictr", 0.78)] + [
        run("keras_lsrec", "fuxictr", 0.7690),
        run("keras_lsrec", "defaults", 0.7640),
    ]:
        key = tuple(record[k] for k in ("dataset", "length", "model", "library", "backend", "variant"))
        groups.setdefault(key, []).append(record)
    rows = script.parity_rows(groups)
    assert rows == [
        ["DIN", 100, "defaults", "1 / 2", "-0.0110", "not met"],
        ["DIN", 100, "fuxictr", "1 / 2", "-0.0060", "not met"],
    ]
    groups[("d", 100, "din", "keras_lsrec", "b", "fuxictr")][0]["auc"] = 0.7705
    assert script.parity_rows(groups)[1][4:] == ["-0.0045", "met"]
