"""bench/anonymize: the release gate on seeded synthetic move records (k=5, 5% suppression cap).

Each size runs in a fresh process so its peak memory (ru_maxrss) is its own. Prints generation
time, gate time (hierarchies, lattice search, apply, write, re-read and verify), peak RSS, the
chosen levels and loss, beside the targets of the issue (100k: under 30 s and 1 GB).

    .venv/bin/python -m bench.anonymize [--sizes 100000 1000000] [--seed 2026]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cityos.kernel.settings import REPO_ROOT

TARGET_SECONDS_100K = 30.0
TARGET_MB_100K = 1024.0


def one(size: int, seed: int) -> dict[str, Any]:
    from cityos.domain.anonymize.gate import run_gate
    from cityos.domain.anonymize.profile import load_profile, profile_path
    from cityos.domain.anonymize.synthetic import synthetic_moves

    schema = json.loads(
        (REPO_ROOT / "schemas" / "resident-moves" / "v1.schema.json").read_text(encoding="utf-8")
    )
    profile = load_profile(profile_path("resident-moves"))
    started = time.perf_counter()
    frame = synthetic_moves(size, seed=seed)
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        outcome = run_gate(frame, profile, schema, path=Path(work) / "release.csv")
    finished = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    search = outcome.search
    return {
        "size": size,
        "passed": outcome.passed,
        "generate_s": round(generated - started, 2),
        "gate_s": round(finished - generated, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "levels": outcome.levels,
        "loss": None if outcome.node is None else round(outcome.node.loss, 4),
        "suppressed": None if outcome.node is None else outcome.node.suppressed,
        "evaluated": None if search is None else f"{search.evaluated}/{search.lattice_size}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.seed), ensure_ascii=False))
        return
    for size in args.sizes:
        run = subprocess.run(
            [sys.executable, "-m", "bench.anonymize", "--one", str(size), "--seed", str(args.seed)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(run.stdout)
        line = (
            f"anonymize {size:>9,} records: gate {result['gate_s']:7.2f} s (generation {result['generate_s']:.2f} s), "
            f"peak RSS {result['peak_rss_mb']:7.1f} MB, loss {result['loss']}, suppressed {result['suppressed']}, "
            f"nodes evaluated {result['evaluated']}, passed={result['passed']}"
        )
        if size == 100_000:
            line += (
                f"  | target < {TARGET_SECONDS_100K:.0f} s: {result['gate_s'] / TARGET_SECONDS_100K:.2f} of it; "
                f"< {TARGET_MB_100K:.0f} MB: {result['peak_rss_mb'] / TARGET_MB_100K:.2f} of it"
            )
        print(line, flush=True)
        print(f"    levels {json.dumps(result['levels'], ensure_ascii=False)}", flush=True)


if __name__ == "__main__":
    main()
