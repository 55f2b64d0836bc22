"""Sample waves for the page: held-out test-split waves (category 4) with their truth, scaled like real signals."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from training.data import scale_and_offset, unit_waves

MIN_OBSERVED = 100
MAX_OBSERVED = 300
MAX_SAMPLES = 20


class Sample(BaseModel):
    id: str = Field(description="stable name of the sample: seed and position")
    wave: list[list[float]] = Field(description=f"observed steps, {MIN_OBSERVED} to {MAX_OBSERVED} rows of F values")
    truth: list[list[float]] = Field(description="the true next steps: `horizon` rows of F values")


class SamplesResponse(BaseModel):
    seed: int = Field(description="the seed these samples were drawn with")
    split: str = Field(description="the data split the waves come from (held out from training)")
    features: int = Field(description="values per step (F)")
    horizon: int = Field(description="rows of truth per sample")
    samples: list[Sample]


def sample_waves(seed: int, count: int, features: int, horizon: int) -> list[Sample]:
    """`count` test-split waves with random length, amplitude and offset; the same seed gives the same samples."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        observed = int(rng.integers(MIN_OBSERVED, MAX_OBSERVED + 1))
        unit = unit_waves(rng, 1, observed + horizon, features, split="test")
        (wave,), _, _ = scale_and_offset(rng, unit, max_log10_amplitude=1.5, max_offset=100.0, min_log10=-0.5)
        wave = np.round(wave.astype(np.float64), 4)
        samples.append(Sample(id=f"test-{seed}-{index}", wave=wave[:observed].tolist(), truth=wave[observed:].tolist()))
    return samples
