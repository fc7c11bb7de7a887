"""Every benchmark on this machine, one table: ``python -m bench [--quick] [--only NAME …]``.

Each benchmark module offers ``run(quick) -> list[Figure]``: figures next to a baseline measured
in the same run (see bench/measure.py).  The table is printed, and written as ``bench/RESULTS.md``
and ``bench/results.json`` (``--out`` elsewhere).  ``--quick`` is a smoke run — short, one
repetition, small inputs — whose figures mean nothing but prove every benchmark still runs; the
suite runs it.  A full run takes about a quarter of an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import time
from pathlib import Path

from bench.measure import Figure
from bench.report import print_table, write

BENCHMARKS = {
    "verification": "bench.verify_signature",
    "token": "bench.token_verify",
    "audit": "bench.audit_throughput",
    "submission": "bench.submit_throughput",
    "delivery": "bench.delivery_throughput",
    "large-documents": "bench.large_documents",
    "overview": "bench.overview_report",
    "witnesses": "bench.witnessed_log",
    "flood": "bench.refusal_flood",
}
METHOD = (
    "Each figure is the median of its repetitions (spread: min–max), after a warm-up, next to a "
    "baseline measured in the same run on the same machine; the ratio is figure ÷ baseline. "
    "Servers are `gateway serve` deployments started for the benchmark (gunicorn, 2 workers); "
    "clients share the machine's cores, so server figures are a floor. Non-2xx answers are counted "
    "as errors, and a figure with errors never counts as met. Rate limits are raised out of the way."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Every benchmark on this machine, one table.")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of every benchmark, short and small: its figures mean nothing"
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run this one (repeatable): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for RESULTS.md and JSON")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            close = difflib.get_close_matches(name, BENCHMARKS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parser.error(f"no benchmark {name!r}{hint}; choose from {', '.join(BENCHMARKS)}")
    figures: list[Figure] = []
    for n, name in enumerate(names, 1):
        began = time.monotonic()
        print(f"[{n}/{len(names)}] {name} …", file=sys.stderr, flush=True)
        figures += importlib.import_module(BENCHMARKS[name]).run(args.quick)
        print(f"[{n}/{len(names)}] {name} done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    if args.quick:
        print("quick run: every benchmark ran, but these figures mean nothing and get no verdicts", flush=True)
    print_table(figures, verdicts=not args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    mode = "quick (smoke run: the figures mean nothing)" if args.quick else "full"
    write(
        figures, args.out / "RESULTS.md", args.out / "results.json", mode=mode, method=METHOD, verdicts=not args.quick
    )
    print(f"written: {args.out / 'RESULTS.md'}, {args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
