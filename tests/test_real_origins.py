"""The single-window real series scored from several origins (benchmarks/real_origins.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.real_origins import CASES, OriginCase, origin_windows, relative_mae
from tests.conftest import DEFAULT_MODEL
from training.real_series import SERIES, seasonal_naive, window_mean

ROOT = Path(__file__).resolve().parent.parent


def test_origin_windows_take_the_history_before_each_origin_up_to_the_context():
    values = np.arange(399.0)
    windows = origin_windows(values, OriginCase("x", 60, 250, 95, 150), context=100)
    assert [(w[0][0], w[0][-1], w[1][0], len(w[1])) for w in windows] == [(0, 59, 60, 150), (55, 154, 155, 150)]
    # origin 250 would need 400 steps: the origins stop where the horizon still fits


def test_every_case_fits_its_series_several_times():
    for case in CASES:
        values = next(s for s in SERIES if s.name == case.series).load()
        windows = origin_windows(values, case, 300)
        assert len(windows) >= 10
        assert all(len(target) == case.horizon and len(observed) >= 60 for observed, target in windows)


def test_seasonal_naive_scores_one_and_the_mean_does_not():
    windows = origin_windows(
        np.sin(np.arange(600) * 0.7) + np.arange(600) * 0.01, OriginCase("x", 60, 400, 30, 100), 300
    )

    def naive(observed, horizon):
        return seasonal_naive(observed, horizon, 9)

    assert relative_mae(naive, windows, 9) == 1.0
    assert relative_mae(window_mean, windows, 9) > 1.0


def test_the_benchmark_scores_the_default_model():
    command = [sys.executable, "-m", "benchmarks.real_origins", "--model", DEFAULT_MODEL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:4] for line in result.stdout.splitlines() if line.startswith("| ")
    }
    assert {"window mean", "persistence"} <= set(rows)
    model_row = next(v for k, v in rows.items() if k.startswith(f"{DEFAULT_MODEL}/"))
    assert all(0.1 < float(cell) < 10 for cell in model_row)
