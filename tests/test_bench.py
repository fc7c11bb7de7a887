"""``python -m bench --quick``: every benchmark still runs and reports figures against a same-run baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_run_reports_every_benchmark_with_baselines_and_no_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    figures = results["figures"]
    assert {f["benchmark"] for f in figures} == set(BENCHMARKS)
    assert all(f["baseline_value"] > 0 and f["value"] > 0 for f in figures), figures
    assert [f["name"] for f in figures if f["errors"]] == []
    assert results["machine"]["cores"] and results["mode"].startswith("quick")
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| benchmark | figure |" in table and all(f["name"] in table for f in figures)


def test_an_unknown_benchmark_name_is_refused_with_the_closest_one() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "verfication"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "did you mean 'verification'" in done.stderr
