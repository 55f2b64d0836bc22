"""A wave's fast validation (numpy vouching for every value) takes exactly the waves the full one takes clean,
and hands every other wave to it."""

import numpy as np
import pytest

from app.schemas import checked_array, request_models
from app.settings import Limits

LIMITS = Limits()
ROWS = np.round(np.random.default_rng(3).normal(size=(80, 5)), 4).tolist()


def with_cell(value, row=4, column=2):
    wave = [list(r) for r in ROWS]
    wave[row][column] = value
    return wave


@pytest.mark.parametrize(
    "wave",
    [ROWS, [r[0] for r in ROWS], with_cell(7), [[int(v * 100) for v in r] for r in ROWS], [r[:1] for r in ROWS]],
    ids=["rows", "flat", "an integer", "all integers", "one feature as rows"],
)
def test_a_clean_wave_becomes_its_float64_array_at_once(wave):
    array = checked_array(wave, LIMITS)
    assert array is not None and array.dtype == np.float64
    np.testing.assert_array_equal(array, np.asarray(wave, dtype=np.float64))
    request = request_models(LIMITS).predict.model_validate({"wave": wave})
    assert isinstance(request.wave, np.ndarray) and np.array_equal(request.wave, array)


@pytest.mark.parametrize(
    "wave",
    [
        with_cell(None),
        with_cell(True),
        with_cell("1.5"),
        with_cell(float("nan")),
        with_cell(float("inf")),
        with_cell(10**400),
        with_cell(2e12),
        with_cell([1.0]),
        [*ROWS[:10], ROWS[10][:4], *ROWS[11:]],
        ROWS[:59],
        ROWS * 100,
        [[r[0]] * (LIMITS.max_features + 1) for r in ROWS],
        [],
        "text",
    ],
    ids=[
        "a gap",
        "a bool",
        "a string",
        "NaN",
        "infinity",
        "a huge integer",
        "too large",
        "a nested list",
        "a short row",
        "too few steps",
        "too many steps",
        "too many features",
        "empty",
        "not a list",
    ],
)
def test_any_other_wave_goes_to_the_full_validation(wave):
    assert checked_array(wave, LIMITS) is None


def test_a_wave_with_gaps_is_validated_in_full_and_keeps_them():
    request = request_models(LIMITS).predict.model_validate({"wave": with_cell(None)})
    assert request.wave[4][2] is None and request.wave[0] == ROWS[0]
