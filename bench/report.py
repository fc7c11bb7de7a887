"""One table for every benchmark's figures: printed, and written as ``bench/RESULTS.md`` and JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import Figure

_VERDICT = {True: "met", False: "NOT MET", None: ""}


def _number(value: float) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def rows(figures: Sequence[Figure], *, verdicts: bool = True) -> list[list[str]]:
    """Table rows; without ``verdicts`` (a smoke run) the met / NOT MET column stays empty."""
    out = []
    for f in figures:
        target = "" if f.target is None else ("≥ " if f.higher_is_better else "≤ ") + f"{f.target:g} ×"
        out.append(
            [
                f.benchmark,
                f.name,
                f"{_number(f.value)} {f.unit}".strip(),
                f.spread,
                f.baseline,
                f"{_number(f.baseline_value)} {f.unit}".strip(),
                f"{f.ratio:.3g} ×",
                target,
                (_VERDICT[f.met] if verdicts else "") + (f" ({f.errors} errors)" if f.errors else ""),
            ]
        )
    return out


HEADER = ["benchmark", "figure", "value", "spread", "baseline (same run)", "baseline", "ratio", "target", ""]


def print_table(figures: Sequence[Figure], *, verdicts: bool = True) -> None:
    table = [HEADER, *rows(figures, verdicts=verdicts)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), flush=True)
        if n == 0:
            print("  ".join("-" * w for w in widths))


def machine() -> dict[str, Any]:
    """What the figures were measured on: they are only comparable on the same machine class."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    with contextlib.suppress(OSError, IndexError):
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def write(
    figures: Sequence[Figure], markdown: Path, as_json: Path, *, mode: str, method: str, verdicts: bool = True
) -> None:
    facts = machine()
    as_json.write_text(
        json.dumps({"machine": facts, "mode": mode, "figures": [f.as_json() for f in figures]}, indent=1) + "\n"
    )
    lines = [
        "# Benchmark results",
        "",
        f"Measured {facts['date']} on {facts['cpu']} ({facts['cores']} cores, {facts['memory']}), "
        f"Python {facts['python']}, {facts['platform']}, commit {facts['commit']}; mode: {mode}.",
        "",
        method,
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *(
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
            for row in rows(figures, verdicts=verdicts)
        ),
        "",
    ]
    notes = [(f, f.notes) for f in figures if f.notes]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- **{f.benchmark} / {f.name}**: " + "; ".join(f"{k}: {v}" for k, v in n.items()) for f, n in notes]
        lines.append("")
    markdown.write_text("\n".join(lines))


def timed_command(description: str, figures: Callable[..., list[Figure]], *, seconds: float = 2.0) -> None:
    """The command line of a benchmark timed in seconds: ``--seconds``, ``--quick`` (0.2 s, once), then the table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--quick", action="store_true", help="a smoke run: short and one repetition")
    args = parser.parse_args()
    print_table(figures(seconds=0.2, repetitions=1) if args.quick else figures(seconds=args.seconds))


def standalone(doc: str | None, run: Callable[[bool], list[Figure]]) -> None:
    """``python bench/NAME.py [--quick]``: one benchmark's figures as the suite's table."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: the figures mean nothing")
    quick = parser.parse_args().quick
    print_table(run(quick), verdicts=not quick)
