"""Shared benchmark plumbing: one subprocess per backend, timing, memory, tables.

Each measurement runs in a fresh Python process with `KERAS_BACKEND` set, so
backends never share a process and peak memory is the process's own. Workers
print one JSON object per result line prefixed with `RESULT `.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

RESULT = "RESULT "


def rss_mib() -> float:
    """Current resident memory of this process, MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(
    fn: Callable[[], Any], warmup: int = 2, repeats: int = 7, budget_s: float = 20.0
) -> list[float]:
    """Seconds per call of `fn` after `warmup` calls; stops early past `budget_s`."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_ms(times: Sequence[float]) -> float:
    return 1000 * statistics.median(times)


def percentile_ms(times: Sequence[float], q: float) -> float:
    return 1000 * float(np.percentile(np.asarray(times), q))


def emit(**result: Any) -> None:
    print(RESULT + json.dumps(result), flush=True)


def run_worker(script: str, backend: str, args: Sequence[str], timeout: float = 1800) -> list[dict]:
    """Runs `python script --worker ARGS` under `backend`; returns its results."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, script, "--worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = [
        json.loads(line[len(RESULT) :]) for line in proc.stdout.splitlines() if line.startswith(RESULT)
    ]
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        results.append({"backend": backend, "error": f"exit {proc.returncode}: {tail}"})
    return results


def machine_line() -> str:
    """The machine, library versions and date, for the table header."""
    import importlib.metadata as md

    versions = []
    for package in ("keras", "tensorflow", "jax", "torch"):
        try:
            versions.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)} logical cores" if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {memory:.0f} GiB RAM; {', '.join(versions)}; {time.strftime('%Y-%m-%d')}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
