import numpy as np
import pytest

from training.config import DataSpec
from training.data import reference_batch, start_steps, training_batch, unit_waves, wavelengths


@pytest.mark.parametrize(("split", "category"), [("train", 0), ("validation", 2), ("test", 4)])
def test_wavelengths_fall_in_their_split_band(split, category):
    w = wavelengths(np.random.default_rng(0), 4000, 5, split, DataSpec())
    base = np.floor(w)
    fraction = (w - base) * 6  # = category + u, u in [0, 1)
    assert base.min() == 11 and base.max() == 30
    assert (fraction >= category).all() and (fraction < category + 1).all()


def test_splits_never_share_a_wavelength():
    rng = np.random.default_rng(1)
    bands = {s: (wavelengths(rng, 2000, 5, s, DataSpec()) % 1) for s in ("train", "validation", "test")}
    assert bands["train"].max() < 1 / 6 < 2 / 6 <= bands["validation"].min()
    assert bands["validation"].max() < 3 / 6 < 4 / 6 <= bands["test"].min()


def test_unit_waves_are_sines_of_the_drawn_wavelength_and_phase():
    rng = np.random.default_rng(2)
    waves = unit_waves(rng, 3, 50, split="test")
    rng = np.random.default_rng(2)
    w = wavelengths(rng, 3, 5, "test", DataSpec())
    phase = rng.random((3, 5))
    t = np.arange(50)
    np.testing.assert_allclose(waves[1, :, 2], np.sin(t / w[1, 2] + phase[1, 2]), atol=1e-6)
    assert phase.min() >= 0 and phase.max() < 1


def test_a_start_step_observes_the_same_sine_from_later_on():
    late = unit_waves(np.random.default_rng(5), 3, 40, split="test", start=np.array([0, 7, 150]))
    full = unit_waves(np.random.default_rng(5), 3, 190, split="test")
    for row, start in enumerate((0, 7, 150)):
        np.testing.assert_allclose(late[row], full[row, start : start + 40], atol=1e-6)


def test_training_waves_start_anywhere_in_a_cycle():
    spec = DataSpec()
    start = start_steps(np.random.default_rng(6), 20_000, spec)
    assert start.min() == 0 and start.max() == spec.max_start_step
    assert abs(np.mean(start == 0) - spec.reference_start_fraction) < 0.02
    assert spec.max_start_step >= 2 * np.pi * (spec.max_base + 1)  # a full cycle of the slowest wave


def test_reference_batch_lengths_follow_the_reference():
    rng = np.random.default_rng(3)
    lengths = set()
    for _ in range(200):
        observed, target = reference_batch(rng, 2)
        assert target.shape == (2, 150, 5)
        lengths.add(observed.shape[1] + 150)
        assert np.allclose(np.abs(observed).max(), 1, atol=0.05)
    assert min(lengths) >= 300 and max(lengths) <= 449 and len(lengths) > 50


def test_generator_is_seeded():
    a = training_batch(np.random.default_rng(7), 4, 80, 20, 5, DataSpec())
    b = training_batch(np.random.default_rng(7), 4, 80, 20, 5, DataSpec())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_training_batch_is_augmented_and_target_clean():
    spec = DataSpec()
    observed, target = training_batch(np.random.default_rng(4), 500, 100, 200, 5, spec)
    assert observed.shape == (500, 100, 5) and target.shape == (500, 200, 5)
    amplitude = (target.max(axis=1) - target.min(axis=1)) / 2
    assert amplitude.min() < 0.2 and amplitude.max() > 5  # log-uniform 0.1 .. 10
    offsets = target.mean(axis=1)
    assert np.abs(offsets).max() > 3
    # targets are smooth sines: second differences stay tiny relative to amplitude; inputs carry noise
    smooth = np.abs(np.diff(target, 2, axis=1)).max(axis=1) / amplitude
    rough = np.abs(np.diff(observed, 2, axis=1)).max(axis=1) / amplitude
    assert smooth.max() < 0.01
    assert (rough > 0.05).mean() > 0.4
