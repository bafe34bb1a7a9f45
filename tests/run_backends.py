"""Run the test suite once per Keras backend; fail if any run fails.

Usage: python tests/run_backends.py [pytest args...]
Each backend runs in its own process (KERAS_BACKEND is read at import time).
pytest's "no tests ran" (exit code 5) counts as a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def main() -> int:
    extra = sys.argv[1:] or ["-q", "-m", "not slow", "-p", "no:cacheprovider"]
    results = []
    for backend in BACKENDS:
        print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
        start = time.perf_counter()
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        code = subprocess.call([sys.executable, "-m", "pytest", *extra], env=env)
        results.append((backend, code, time.perf_counter() - start))
    print("\nbackend     exit  seconds")
    for backend, code, seconds in results:
        print(f"{backend:<11} {code:>4}  {seconds:7.1f}")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
