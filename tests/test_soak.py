"""The 60-second soak (issue 10): a mixed load at half of peak against a real server, nothing drifting or lost.

The documented 10-minute run is ``.venv/bin/python bench/soak.py --seconds 600``; this is the same
run, shorter, with the same checks (see ``bench/soak.py``).
"""

from __future__ import annotations

import pytest

from bench.soak import soak

pytestmark = pytest.mark.slow


def test_a_minute_of_mixed_load_at_half_of_peak_leaves_nothing_drifting_or_missing():
    report = soak(60)
    first, last = report.windows[0], report.windows[-1]
    print(
        f"\nsoak: peak {report.peak_per_second:.1f}/s, ran at {report.target_per_second:.1f} ops/s; "
        f"RSS {first.rss_mb}→{last.rss_mb} MB, files {first.open_files}→{last.open_files}, "
        f"p99 {first.p99_ms}→{last.p99_ms} ms; {report.accepted} documents"
    )
    assert report.unexpected == []
    assert report.ok, report.checks
