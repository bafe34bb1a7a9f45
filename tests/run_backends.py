"""Lint, type-check, then run the test suite once per Keras backend; fail if any step fails.

Usage: python tests/run_backends.py [pytest args...]

The steps:
- `ruff check`, `ruff format --check` (the whole repository) and `mypy` (the
  package, tests, bench, examples and tuning; configured in pyproject.toml);
- pytest in its own process per backend (KERAS_BACKEND is read at import
  time);
- jax's steps with `XLA_FLAGS=--xla_backend_optimization_level=0` (unless
  XLA_FLAGS is set): compilation is most of their time;
- the next Keras (`keras-nightly`, installed from the registry into a
  temporary folder put first on the path, beside the released one) running
  two models' contract and the private-member checks on jax and tensorflow,
  so that a Keras release cannot break users unseen.

The steps run `--jobs` at a time (default: the machine's cores, at most 2):
a pytest process keeps about one core busy (compilation and Python are
single-threaded), so on the 2-core CI machine two backends side by side take
about half the wall time of one after the other. Each step's output is
printed whole when it ends. pytest's "no tests ran" (exit code 5) counts as a
failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

# Longest first, so that the last step to start is a short one.
BACKENDS = ("jax", "tensorflow", "torch")
# What the next Keras runs: two models' whole contract and the private Keras members.
NEXT_KERAS_TESTS = [
    "tests/training/test_keras_private.py",
    "tests/models/test_contract.py",
    "-k",
    "test_keras_private or (TestModelContract and (din or dare))",
]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Step = tuple[str, list[str], dict[str, str]]


def run(step: Step) -> tuple[str, int, float]:
    label, command, env = step
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    print(f"\n===== {label} (exit {done.returncode}, {seconds:.0f} s) =====", flush=True)
    sys.stdout.write(done.stdout.decode(errors="replace"))
    sys.stdout.flush()
    return label, done.returncode, seconds


def backend_env(backend: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    if backend == "jax" and "XLA_FLAGS" not in os.environ:
        # The suite's batches are tiny: its jax time is XLA compilation. Without
        # LLVM's optimisation passes it compiles ~30% faster (tests/models/test_contract.py
        # -k "din or sam": 85 s -> 61 s on the 2-core VM); results agree within the tolerances.
        env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    return env


def main() -> int:
    args = sys.argv[1:]
    jobs = min(2, os.cpu_count() or 1)
    if args[:1] == ["--jobs"]:
        jobs, args = int(args[1]), args[2:]
    extra = args or ["-q", "-m", "not slow", "-p", "no:cacheprovider"]
    python = sys.executable
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as next_keras:
        install = [python, "-m", "pip", "install", "-q", "--no-deps", "--target", next_keras, "keras-nightly"]
        results = [run(("install keras-nightly", install, dict(os.environ)))]
        path = os.pathsep.join([next_keras, os.environ.get("PYTHONPATH", "")])
        steps: list[Step] = [
            (f"KERAS_BACKEND={b}", [python, "-m", "pytest", *extra], backend_env(b)) for b in BACKENDS
        ]
        steps += [
            ("ruff", [python, "-m", "ruff", "check", "."], dict(os.environ)),
            ("ruff format", [python, "-m", "ruff", "format", "--check", "."], dict(os.environ)),
            ("mypy", [python, "-m", "mypy"], dict(os.environ)),
        ]
        steps += [
            (
                f"next Keras, {b}",
                [python, "-m", "pytest", *extra, *NEXT_KERAS_TESTS],
                backend_env(b, PYTHONPATH=path),
            )
            for b in ("jax", "tensorflow")
        ]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results += list(pool.map(run, steps))
        version = subprocess.run(
            [python, "-c", "import keras; print(keras.__version__)"],
            env=backend_env("jax", PYTHONPATH=path),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        print(f"\nnext Keras: {version.stdout.decode().strip()}")
    print(f"\nstep                        exit  seconds   ({jobs} at a time)")
    for label, code, seconds in results:
        print(f"{label:<27} {code:>4}  {seconds:7.1f}")
    print(f"all steps: {time.perf_counter() - started:.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
