"""Gap filling: linear inside, nearest at the ends, refusals that name the feature."""

import numpy as np
import pytest

from training.gaps import GapError, fill_gaps

nan = np.nan


def test_no_gaps_returns_the_wave_and_zero():
    wave = np.arange(12, dtype=np.float32).reshape(6, 2)
    filled, count = fill_gaps(wave, 0.5)
    assert count == 0
    np.testing.assert_array_equal(filled, wave)
    assert filled.dtype == np.float32


def test_inside_gaps_are_linear_and_ends_take_the_nearest_value():
    wave = np.array(
        [
            [nan, 1.0],
            [2.0, nan],
            [nan, nan],
            [8.0, 4.0],
            [nan, 5.0],
        ]
    )
    filled, count = fill_gaps(wave, 0.6)
    assert count == 5
    np.testing.assert_allclose(filled[:, 0], [2.0, 2.0, 5.0, 8.0, 8.0])
    np.testing.assert_allclose(filled[:, 1], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.isnan(wave).sum() == 5  # the input is left as it was


def test_float32_stays_float32():
    wave = np.array([[1.0], [nan], [3.0]], dtype=np.float32)
    filled, count = fill_gaps(wave, 0.5)
    assert filled.dtype == np.float32 and count == 1
    assert filled[1, 0] == pytest.approx(2.0)


def test_a_feature_without_any_value_is_named():
    wave = np.array([[1.0, nan, 2.0], [2.0, nan, 3.0]])
    with pytest.raises(GapError, match=r"^wave 3: feature 1 has no value$"):
        fill_gaps(wave, 0.5, label="wave 3")


def test_more_missing_than_allowed_is_named_and_the_limit_itself_passes():
    wave = np.array([[1.0, 1.0], [nan, 2.0], [nan, nan], [4.0, 4.0]])
    filled, count = fill_gaps(wave, 0.5)  # feature 0 misses exactly half: allowed
    assert not np.isnan(filled).any()
    assert count == 3
    with pytest.raises(GapError, match="feature 0 misses 2 of 4 steps"):
        fill_gaps(wave, 0.4)


def test_a_wave_that_is_not_steps_by_features_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"^wave 2: expected a \(steps, features\) array, got shape \(4,\)$"):
        fill_gaps(np.array([1.0, nan, 3.0, 4.0]), 0.5, label="wave 2")


def test_integer_waves_come_back_as_floats_and_unchanged():
    wave = np.arange(6).reshape(3, 2)
    filled, count = fill_gaps(wave, 0.5)
    assert count == 0 and filled.dtype == np.float64
    np.testing.assert_array_equal(filled, wave)


def test_infinite_values_are_not_gaps():
    wave = np.array([[1.0], [np.inf], [nan], [3.0]])
    filled, count = fill_gaps(wave, 0.5)
    assert count == 1
    assert np.isinf(filled[1, 0])
