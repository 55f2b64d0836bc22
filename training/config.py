"""Configuration records shared by training, evaluation and the model store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

SPLIT_CATEGORIES = {"train": 0, "validation": 2, "test": 4}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the encoder/decoder; the defaults are the reference design."""

    features: int = 5
    units: int = 40
    encoder_depth: int = 4
    decoder_depth: int = 4
    horizon: int = 150
    min_input_length: int = 60
    max_context: int = 300
    channel_independent: bool = False  # True: each feature is its own sequence (features folded into the batch)
    decoder_state: str = "first_layer"  # "first_layer" (reference: layers 2.. start at zero) or "all_layers"
    residual_head: bool = False  # True: each decoder step predicts the change from its input, not the value
    seasonal_lag: bool = False  # True: the decoder also sees the value one season back (channel-independent only)
    seasons_back: int = 1  # with seasonal_lag: the decoder sees the values 1..seasons_back seasons back
    history: int = 0  # with seasonal_lag, > max_context: the season and its look back come from this many steps

    @property
    def reads(self) -> int:
        """The observed steps the model reads: the encoder the last max_context, the season look back more."""
        return max(self.max_context, self.history if self.seasonal_lag else 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DataSpec:
    """The reference data: sin(t / w + s) with w = B + (category + u) / 6 per feature."""

    min_base: int = 11
    max_base: int = 30
    min_observed: int = 60
    max_observed: int = 300
    max_amplitude_log10: float = 1.0
    max_offset: float = 5.0
    max_noise: float = 0.08
    clean_fraction: float = 0.3
    # Real observations start anywhere in a cycle; the reference's all start at t = 0 (phase 0-1 rad), and a
    # model trained only on those fails on a wave seen from another moment. Training waves start at a random
    # step in 0..max_start_step (a full cycle of the slowest wave, 2 pi x 30.8 = 194 steps) except this fraction:
    reference_start_fraction: float = 0.25
    max_start_step: int = 200

    def to_dict(self) -> dict:
        return asdict(self)


TRAINED_MODEL = ModelConfig(channel_independent=True, decoder_state="all_layers")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule: free-running decoder with a horizon curriculum."""

    batch_size: int = 128
    max_steps: int = 5500
    max_minutes: float = 80.0
    learning_rate: float = 2e-3
    final_learning_rate: float = 2e-5
    ema: float = 0.0  # > 0: validate and keep checkpoints of an exponential moving average of the weights
    loss: str = "mse"  # on normalized values: "mse" (squared error) or "mae" (absolute error, the metric's own)
    clipnorm: float = 1.0
    curriculum_start: int = 10
    curriculum_steps: int = 800
    eval_every: int = 200
    validation_waves: int = 256
    patience: int = 15
    seed: int = 0
    model: ModelConfig = TRAINED_MODEL
    data: DataSpec = field(default_factory=DataSpec)

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = TrainConfig(  # `train --quick`: a tiny model in well under a minute (the tests' models)
    batch_size=32,
    max_steps=240,
    max_minutes=3.0,
    learning_rate=5e-3,
    curriculum_start=10,
    curriculum_steps=120,
    eval_every=40,
    validation_waves=64,
    patience=100,
    model=replace(TRAINED_MODEL, units=16, encoder_depth=1, decoder_depth=1),
)
