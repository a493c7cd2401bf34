"""bench/rules runs and ends with its JSON line (a small run; the real one is `bench/rules`)."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import ROOT


def test_the_rules_bench_prints_evaluations_per_second():
    result = subprocess.run(
        [ROOT / "bench" / "rules", "--proposals", "300", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "rules: 20 (20 on); proposals: 300; passes: 1"
    assert json.loads(lines[-1])["evals_per_s"] > 0
