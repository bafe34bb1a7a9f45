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
