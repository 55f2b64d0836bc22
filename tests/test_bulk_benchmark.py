"""The bulk benchmark runs end to end on a tiny size. It checks that the script works, not how fast anything is."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bulk_benchmark_prints_the_command_against_the_model_alone():
    command = [sys.executable, "-m", "benchmarks.bulk", "--series", "40,80", "--steps", "90", "--horizon", "5"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()]
    runs = [row for row in rows if row[:1] == ["wave-complete"] and row[1].isdigit()]
    assert [row[1] for row in runs] == ["40", "80"]
    assert all(float(row[2].replace(",", "")) > 0 and float(row[4]) > 100 for row in runs)  # series/s, RSS MB
    if importlib.util.find_spec("ray") is not None:  # the same command on a local Ray cluster
        ray_row = next(row for row in rows if row[:2] == ["--ray", "(local)"])
        assert ray_row[2] == "40" and float(ray_row[3].replace(",", "")) > 0
    alone = next(row for row in rows if row[:2] == ["model", "alone"])
    assert alone[2] == "40" and float(alone[3].replace(",", "")) > 0
    assert result.stdout.splitlines()[-1].startswith("wave-complete / model alone (40 series): ")
