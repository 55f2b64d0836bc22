"""Length buckets: a wave runs padded to the smallest bucket that holds it, with the answer it gets padded to the
whole context (issue 28's proof), and the batcher never mixes buckets in one call."""

import asyncio
import threading
from dataclasses import replace

import keras
import numpy as np
import pytest

from app.batching import MicroBatcher
from training.config import QUICK, TRAINED_MODEL
from training.layers import SeasonalLag
from training.loading import load_model
from training.model import build_model
from training.predict import Predictor, length_buckets

# every length from the shortest a model takes to beyond the context, with each bucket's edges
LENGTHS = sorted({*range(60, 301, 11), 107, 108, 109, 203, 204, 205, 299, 300, 301, 450, 1000})


def sweep(seed: int, widths: tuple[int, ...]) -> list[np.ndarray]:
    """Noisy seasonal waves of every length in LENGTHS, on offsets and trends, `widths` features in turn."""
    rng = np.random.default_rng(seed)
    waves = []
    for i, steps in enumerate(LENGTHS):
        features = widths[i % len(widths)]
        t = np.arange(steps)[:, None]
        season = np.sin(2 * np.pi * t / rng.uniform(4, 70, features)) * rng.uniform(0.5, 3, features)
        noise = 0.3 * rng.normal(size=(steps, features))
        waves.append((season + noise + rng.normal(0, 5, features) + 0.01 * t).astype(np.float32))
    return waves


def assert_bucketed_equals_whole_context(model: keras.Model, widths: tuple[int, ...]) -> None:
    bucketed = Predictor(model, max_batch=4)
    whole = Predictor(model, max_batch=4, lengths=[bucketed.context])
    longer = (bucketed.context,) if bucketed.context > 300 else ()  # a model reading a longer look back (general/12)
    assert bucketed.lengths == (108, 204, 300, *longer) and whole.lengths == (bucketed.context,)
    for wave in sweep(0, widths):
        expected = whole([wave])[0]
        np.testing.assert_allclose(bucketed([wave])[0], expected, rtol=1e-5, atol=1e-5, err_msg=f"{len(wave)} steps")


@pytest.mark.parametrize("name", ["general", "wave"])
def test_the_committed_models_answer_the_same_in_every_bucket(default_store, name):
    """`general` finds a season (SeasonalLag) and `wave` does not: both give the whole context's answers."""
    assert_bucketed_equals_whole_context(load_model(default_store, name).model, (1, 3, 5, 2))


def test_a_fixed_width_model_answers_the_same_in_every_bucket():
    keras.utils.set_random_seed(3)
    assert_bucketed_equals_whole_context(build_model(replace(TRAINED_MODEL, units=8, channel_independent=False)), (5,))


def test_a_channel_independent_seasonal_model_answers_the_same_in_every_bucket():
    keras.utils.set_random_seed(4)
    assert_bucketed_equals_whole_context(build_model(replace(QUICK.model, units=6, seasonal_lag=True)), (1, 4))


def test_the_season_and_its_history_do_not_depend_on_the_padded_length():
    layer = SeasonalLag(300)
    for wave in sweep(1, (1,)):
        x = wave[-300:, 0]
        outputs = {}
        for steps in (length for length in (108, 204, 300) if length >= len(x)):
            padded, mask = np.zeros((1, steps, 1), np.float32), np.zeros((1, steps), bool)
            padded[0, steps - len(x) :, 0], mask[0, steps - len(x) :] = x, True
            outputs[steps] = [np.asarray(value) for value in layer(padded, mask=mask)]
        for history, period, strength in outputs.values():
            np.testing.assert_array_equal(history, outputs[300][0])
            np.testing.assert_array_equal(period, outputs[300][1])
            np.testing.assert_allclose(strength, outputs[300][2], rtol=1e-6, atol=1e-7)


def test_a_wave_runs_in_the_smallest_bucket_that_holds_its_context():
    predict = Predictor(build_model(replace(QUICK.model, units=4)), max_batch=2)
    assert length_buckets(300) == (108, 204, 300) and length_buckets(250, 4) == (74, 138, 202, 250)
    expected = {60: 108, 108: 108, 109: 204, 204: 204, 205: 300, 300: 300, 5000: 300}
    assert {steps: predict.length_bucket(np.zeros((steps, 1))) for steps in expected} == expected
    assert Predictor(build_model(replace(QUICK.model, units=4)), lengths=[50, 400]).lengths == (50, 300)


def test_deferred_programs_run_as_smaller_calls_until_warmed_up():
    keras.utils.set_random_seed(5)
    predict = Predictor(build_model(replace(QUICK.model, units=4)), max_batch=4)  # rows 5, 10, 20
    waves = sweep(2, (5,))[:6]  # 30 rows, lengths 60 to 107: the first bucket
    expected = predict(waves)
    predict.defer(predict.shapes)
    assert (5, 300) not in predict.deferred and (5, 108) in predict.deferred  # one wave of any length still runs
    np.testing.assert_allclose(predict(waves), expected, rtol=1e-5, atol=1e-5)  # in calls of 5 rows of 300 steps
    predict.warm_up()  # every program not deferred
    assert (20, 300) in predict.deferred
    predict.warm_up([(20, 300)])
    np.testing.assert_allclose(predict(waves), expected, rtol=1e-5, atol=1e-5)  # in calls of 20 rows of 300 steps
    predict.warm_up([(10, 108)])
    assert (20, 300) not in predict.deferred and (10, 108) not in predict.deferred
    np.testing.assert_allclose(predict(waves), expected, rtol=1e-5, atol=1e-5)  # in calls of 10 rows of 108 steps
    assert predict.trace_count() == 1  # every shape runs the one trace


class BucketEcho:
    """Completes each wave with its last row; records the buckets (first value of a wave) of each call."""

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.calls: list[list[int]] = []
        self.started = threading.Event()

    def __call__(self, waves):
        self.calls.append([int(w[0, 0]) for w in waves])
        self.started.set()
        if self.gate is not None and len(self.calls) == 1:
            self.gate.wait(timeout=10)
        return [np.repeat(w[-1:], 3, axis=0) for w in waves]


@pytest.mark.anyio
async def test_the_oldest_waves_bucket_goes_first_and_buckets_never_share_a_call():
    gate = threading.Event()
    model = BucketEcho(gate)
    batcher = MicroBatcher(model, max_batch=8, max_wait=0, workers=1, bucket=lambda wave: int(wave[0, 0]))
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.complete([np.full((3, 1), 7.0)]))
        assert await asyncio.to_thread(model.started.wait, 10)  # the first call runs, held by the gate
        waves = [np.full((3, 1), bucket, np.float32) for bucket in (2, 1, 1, 1, 2, 3, 1)]
        rest = asyncio.gather(*(batcher.complete([wave]) for wave in waves))
        await asyncio.sleep(0)
        assert batcher.queue_depth == 7
        gate.set()
        await first
        assert [int(r[0][0, 0]) for r in await rest] == [2, 1, 1, 1, 2, 3, 1]
    finally:
        await batcher.stop()
    assert model.calls == [[7], [2, 2], [1, 1, 1, 1], [3]]  # by the oldest waiting wave's bucket, each whole


@pytest.mark.anyio
async def test_batched_waves_of_every_bucket_get_their_unbatched_answers(default_store):
    predict = Predictor(load_model(default_store, "general").model, max_batch=4)
    calls: list[set[int]] = []

    def recording(waves):
        calls.append({predict.length_bucket(wave) for wave in waves})
        return predict(waves)

    waves = sweep(3, (1, 2, 5, 3))
    batcher = MicroBatcher(
        recording,
        predict.buckets[-1],
        0.01,
        workers=2,
        sizes=predict.buckets,
        rows=predict.rows,
        bucket=predict.length_bucket,
    )
    batcher.start()
    try:
        together = await asyncio.gather(*(batcher.complete([wave]) for wave in waves))
    finally:
        await batcher.stop()
    assert all(len(buckets) == 1 for buckets in calls) and len(calls) < len(waves)
    for wave, (answer,) in zip(waves, together, strict=True):
        np.testing.assert_allclose(answer, predict([wave])[0], rtol=1e-5, atol=1e-5)
