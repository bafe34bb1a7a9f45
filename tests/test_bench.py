"""bench/run.py --quick runs on the current backend and prints its table (no peer)."""

import os
import subprocess
import sys

import keras
from test_case import only_under

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@only_under("torch", why="the script's table; each backend's models train in their own lanes")
def test_quick_benchmark_runs_without_the_peer():
    backend = keras.backend.backend()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "bench", "run.py"),
            "--quick",
            "--backends",
            backend,
            "--models",
            "DARE,IFA",
            "--lengths",
            "50",
            "--batch",
            "32",
            "--threads",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| keras_lsrec")]
    assert len(table) == 2, proc.stdout
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == backend and float(cells[4].replace(",", "")) > 0  # train samples/s
    assert "| fuxictr" not in proc.stdout
