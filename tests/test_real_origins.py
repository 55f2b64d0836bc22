"""The single-window real series scored from several origins (benchmarks/real_origins.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.real_origins import CASES, OriginCase, origin_windows, relative_mae
from tests.conftest import DEFAULT_MODEL
from training.baselines import persistence, seasonal_naive, window_mean
from training.real_series import SERIES

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


def test_relative_mae_on_a_hand_computed_case():
    """Two windows of a ramp, period 4. Seasonal naive repeats 4..7 against 8, 9 (MAE 4) and 6..9 against 10..12
    (MAE 4); persistence 7 (MAE 1.5) and 9 (MAE 2); the window mean 3.5 (MAE 5) and 4.5 (MAE 6.5). The score is
    the sum of the windows' MAEs over seasonal naive's: 3.5 / 8 and 11.5 / 8."""
    windows = [(np.arange(8.0), np.array([8.0, 9.0])), (np.arange(10.0), np.array([10.0, 11.0, 12.0]))]
    assert relative_mae(persistence, windows, 4) == 3.5 / 8
    assert relative_mae(window_mean, windows, 4) == 11.5 / 8
    # a season of 2 repeats 6, 7 against 8, 9 (MAE 2) and 8, 9, 8 against 10..12 (MAE 8 / 3): (2 + 8 / 3) / 8
    two = relative_mae(lambda observed, horizon: seasonal_naive(observed, horizon, 2), windows, 4)
    assert two == pytest.approx(7 / 12, rel=1e-12)


def independent_scores(case: OriginCase, context: int = 300) -> dict[str, float]:
    """Window mean's and persistence's score on a case, with plain loops over the origins."""
    item = next(s for s in SERIES if s.name == case.series)
    values, period = item.load(), item.period
    errors = {"window mean": 0.0, "persistence": 0.0, "naive": 0.0}
    origin = case.first
    while origin <= case.last and origin + case.horizon <= len(values):
        seen, truth = values[max(0, origin - context) : origin], values[origin : origin + case.horizon]
        cycle = [seen[len(seen) - period + step % period] for step in range(case.horizon)]
        errors["naive"] += np.mean(np.abs(np.array(cycle) - truth))
        errors["window mean"] += np.mean(np.abs(seen.mean() - truth))
        errors["persistence"] += np.mean(np.abs(seen[-1] - truth))
        origin += case.every
    return {name: errors[name] / errors["naive"] for name in ("window mean", "persistence")}


def test_the_benchmark_scores_the_default_model():
    command = [sys.executable, "-m", "benchmarks.real_origins", "--model", DEFAULT_MODEL]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [cell.strip() for cell in lines[0]] == ["method", *(case.series for case in CASES)]
    rows = {cells[0].strip(): [float(cell) for cell in cells[1:]] for cells in lines[2:]}
    for method in ("window mean", "persistence"):
        expected = [independent_scores(case)[method] for case in CASES]
        assert rows[method] == pytest.approx(expected, abs=5e-4)  # printed to 3 decimals
    # the README's figures for general/12: 1.02x seasonal naive's error on the yearly sunspots, 2.34x on the beer
    (model,) = [key for key in rows if key.startswith(f"{DEFAULT_MODEL}/")]
    assert rows[model] == pytest.approx([1.021, 2.341], abs=5e-3)
