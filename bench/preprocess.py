"""Preprocessing speed and peak memory on a generated UserBehavior-format file.

    python bench/preprocess.py                      # 20 million rows
    python bench/preprocess.py --rows 2000000 --keep-file

Writes a Taobao `UserBehavior.csv`-format file (user, item, category,
behaviour, timestamp; no header; grouped by user, times not sorted within a
user, as in the real file) with `--rows` rows: users with log-normal
activity (median ~60 events, a long tail past the DARE protocol's 210), 4M
items in 9,000 categories, 90% page views. Then, in a fresh process, times
`load_taobao(behaviors=["pv"])` and `dare_protocol(...)` and reports rows per
second of each phase and the process's peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def generate(path: str, rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.lognormal(np.log(60), 1.0, rows // 20)).astype("int64")
    lengths = lengths[np.cumsum(lengths) <= rows]
    lengths = np.append(lengths, rows - lengths.sum()) if lengths.sum() < rows else lengths
    users = np.repeat(np.arange(1, len(lengths) + 1), lengths)
    behaviors = np.array(["pv", "buy", "cart", "fav"])
    with open(path, "w") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            items = rng.integers(1, 4_000_000, n)
            columns = [
                users[start : start + n].astype(str),
                items.astype(str),
                (items % 9000 + 1).astype(str),
                behaviors[rng.choice(4, n, p=[0.9, 0.02, 0.05, 0.03])],
                rng.integers(1511539200, 1512316799, n).astype(str),
            ]
            f.write("\n".join(",".join(row) for row in zip(*columns, strict=True)) + "\n")


def worker(path: str) -> None:
    from keras_lsrec.data import dare_protocol, load_taobao

    start = time.perf_counter()
    events = load_taobao(path, behaviors=["pv"], progress=False)
    loaded = time.perf_counter()
    splits = dare_protocol(events)
    done = time.perf_counter()
    print(
        common.RESULT
        + json.dumps(
            {
                "events": len(events),
                "load_s": loaded - start,
                "protocol_s": done - loaded,
                "examples": {k: v.num_examples for k, v in splits.items()},
                "peak_mib": common.peak_rss_mib(),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--keep-file", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "UserBehavior.csv")
    t0 = time.perf_counter()
    generate(path, args.rows)
    size = os.path.getsize(path) / 2**20
    print(f"Machine: {common.machine_line()}")
    print(f"Generated {args.rows:,} rows ({size:,.0f} MiB) in {time.perf_counter() - t0:.0f} s: {path}\n")
    proc = subprocess.run([sys.executable, __file__, "--worker", path], capture_output=True, text=True)
    if not args.keep_file:
        os.remove(path)
        os.rmdir(folder)
    results = [
        json.loads(line[len(common.RESULT) :])
        for line in proc.stdout.splitlines()
        if line.startswith(common.RESULT)
    ]
    if proc.returncode or not results:
        sys.exit(f"worker failed: {proc.stderr[-2000:]}")
    r = results[0]
    total = r["load_s"] + r["protocol_s"]
    print(
        common.markdown_table(
            ["phase", "seconds", "rows/s", "output"],
            [
                [
                    "load_taobao (read, parse, remap, sort, dedupe)",
                    f"{r['load_s']:.1f}",
                    f"{args.rows / r['load_s']:,.0f}",
                    f"{r['events']:,} page views",
                ],
                [
                    "dare_protocol (users >= 210 events, 2 negatives)",
                    f"{r['protocol_s']:.1f}",
                    f"{args.rows / r['protocol_s']:,.0f}",
                    ", ".join(f"{k} {v:,}" for k, v in r["examples"].items()),
                ],
                ["total", f"{total:.1f}", f"{args.rows / total:,.0f}", f"peak RSS {r['peak_mib']:,.0f} MiB"],
            ],
        )
    )


if __name__ == "__main__":
    main()
