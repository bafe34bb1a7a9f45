"""Lint, type-check, then run the test suite once per Keras backend; fail if any step fails.

Usage: python tests/run_backends.py [pytest args...]
`ruff check` (the whole repository) and `mypy` (keras_lsrec/, configured in
pyproject.toml) run first; then pytest runs in its own process per backend
(KERAS_BACKEND is read at import time). pytest's "no tests ran" (exit code 5)
counts as a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(label: str, command: list[str], env: dict[str, str] | None = None) -> tuple[str, int, float]:
    print(f"\n===== {label} =====", flush=True)
    start = time.perf_counter()
    code = subprocess.call(command, env=env, cwd=ROOT)
    return label, code, time.perf_counter() - start


def main() -> int:
    extra = sys.argv[1:] or ["-q", "-m", "not slow", "-p", "no:cacheprovider"]
    results = [
        run("ruff", [sys.executable, "-m", "ruff", "check", "."]),
        run("mypy", [sys.executable, "-m", "mypy"]),
    ]
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        results.append(run(f"KERAS_BACKEND={backend}", [sys.executable, "-m", "pytest", *extra], env))
    print("\nstep                      exit  seconds")
    for label, code, seconds in results:
        print(f"{label:<25} {code:>4}  {seconds:7.1f}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
