"""Free-running training with a horizon curriculum, random observed lengths and one traced step function."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from training.config import DataSpec, TrainConfig
from training.data import training_batch, unit_waves
from training.layers import FoldFeatures, WaveNormalizer
from training.model import build_core, build_model, copy_core_weights


@dataclass
class TrainResult:
    """What a training run produced: the best model and its history."""

    model: keras.Model
    best_validation_loss: float
    steps: int
    wall_seconds: float
    history: list[dict]


class BatchSource(Protocol):
    """Where training and validation waves come from: the reference sines, a synthetic family, a user's files."""

    def batch(self, rng: np.random.Generator, n: int, observed: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` training windows: observed (n, observed, features) and the clean target (n, horizon, features)."""
        ...

    def observed_range(self) -> tuple[int, int]:
        """Fewest and most observed steps a training window may have."""
        ...

    def validation_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fixed (observed, target) pairs, full horizon, that pick the best checkpoint."""
        ...

    def describe(self) -> dict:
        """What the manifest records about the data (JSON-serializable)."""
        ...


@dataclass(frozen=True)
class SineSource:
    """The reference sines, augmented (training) and held out by category (validation)."""

    spec: DataSpec
    features: int

    def batch(self, rng: np.random.Generator, n: int, observed: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        return training_batch(rng, n, observed, horizon, self.features, self.spec)

    def observed_range(self) -> tuple[int, int]:
        return self.spec.min_observed, self.spec.max_observed

    def validation_sets(self, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
        return validation_sets(config)

    def describe(self) -> dict:
        return {"source": "sines", **self.spec.to_dict()}


def curriculum_horizon(step: int, config: TrainConfig) -> int:
    """Decoder steps trained at `step`: grows linearly from curriculum_start to the full horizon."""
    full = config.model.horizon
    if step >= config.curriculum_steps:
        return full
    fraction = step / config.curriculum_steps
    return round(config.curriculum_start + fraction * (full - config.curriculum_start))


def learning_rate(step: int, config: TrainConfig) -> float:
    """Cosine decay from learning_rate to final_learning_rate over max_steps."""
    progress = min(step / max(config.max_steps, 1), 1.0)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine


def validation_sets(config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed validation waves (category 2, full horizon): clean unit waves and augmented short and long ones."""
    rng = np.random.default_rng(config.seed + 1_000_003)
    spec, horizon, features = config.data, config.model.horizon, config.model.features
    n = config.validation_waves
    unit = unit_waves(rng, n, 2 * horizon + horizon // 2, features, "validation", spec)
    sets = [(unit[:, :-horizon], unit[:, -horizon:])]
    for observed in (spec.min_observed + 20, spec.max_observed - 60):
        sets.append(training_batch(rng, n, observed, horizon, features, spec, split="validation"))
    return sets


class WeightAverage:
    """An exponential moving average of a model's trainable weights, updated inside the traced train step.

    The decay is min(decay, (1 + n) / (10 + n)) after n optimizer steps, so early averages forget the
    initialization quickly. `swapped()` puts the average into the model (and the live weights aside) for
    validation and checkpointing.
    """

    def __init__(self, core: keras.Model, optimizer: keras.optimizers.Optimizer, decay: float):
        self.variables = core.trainable_variables
        self.average = [tf.Variable(v.value, trainable=False) for v in self.variables]
        self.optimizer = optimizer
        self.decay = decay

    def update(self) -> None:
        n = tf.cast(self.optimizer.iterations, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (10.0 + n))
        for average, variable in zip(self.average, self.variables, strict=True):
            average.assign(decay * average + (1.0 - decay) * variable.value)

    @contextlib.contextmanager
    def swapped(self):
        """The average in the model inside the block, the live weights back after it."""
        live = [variable.numpy() for variable in self.variables]
        for average, variable in zip(self.average, self.variables, strict=True):
            variable.assign(average)
        try:
            yield
        finally:
            for value, variable in zip(live, self.variables, strict=True):
                variable.assign(value)


def observed_length(rng: np.random.Generator, low: int, high: int, context: int) -> int:
    """A training batch's observed steps, uniform in [low, high]; when the model reads more than its encoder's
    `context` (a longer season look back), half the batches within the context and half beyond it, so the short
    waves most requests send keep the share of training they had."""
    if high <= context or rng.random() < 0.5:
        return int(rng.integers(low, min(high, context) + 1))
    return int(rng.integers(context + 1, high + 1))


def make_step_functions(
    core: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    channel_independent: bool,
    average: WeightAverage | None = None,
    loss: str = "mse",
    context: int = 0,
):
    """The train and validation steps, traced once for every batch size, observed length and horizon; the train
    step also updates `average` when given. `loss`: "mse" or "mae" of the normalized values. With `context` and a
    core that reads a longer history (a third input), the encoder gets the last `context` observed steps, the
    history all of them, normalized alike (as build_model does)."""
    normalize = WaveNormalizer()
    fold = FoldFeatures()
    spec = tf.TensorSpec([None, None, None], tf.float32)
    long_history = len(core.inputs) == 3

    def normalized_loss(observed, target, training):
        recent = observed[:, -context:] if long_history else observed
        normalized, mean, scale = normalize(recent)
        history = (observed - mean) / scale
        target = (target - mean) / scale
        if channel_independent:
            normalized, target, history = fold(normalized), fold(target), fold(history)
        clock = tf.zeros_like(target[:, :, :1])
        inputs = [normalized, clock, history] if long_history else [normalized, clock]
        prediction = core(inputs, training=training)
        error = prediction - target
        return tf.reduce_mean(tf.abs(error) if loss == "mae" else tf.square(error))

    @tf.function(input_signature=[spec, spec])
    def train_step(observed, target):
        with tf.GradientTape() as tape:
            loss = normalized_loss(observed, target, True)
        gradients = tape.gradient(loss, core.trainable_variables)
        optimizer.apply_gradients(zip(gradients, core.trainable_variables, strict=False))
        if average is not None:
            average.update()
        return loss

    @tf.function(input_signature=[spec, spec])
    def validation_step(observed, target):
        return normalized_loss(observed, target, False)

    return train_step, validation_step


def train(
    config: TrainConfig,
    checkpoint_path: Path,
    log: Callable[[str], None] = print,
    initial: keras.Model | None = None,
    source: BatchSource | None = None,
) -> TrainResult:
    """Train (from scratch, or from `initial`'s weights) on `source` (default: the reference sines); keep the best
    validation checkpoint; return it."""
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    source = source or SineSource(config.data, config.model.features)
    min_observed, max_observed = source.observed_range()
    core = build_core(config.model)
    if initial is not None:
        copy_core_weights(initial.get_layer("seq2seq"), core)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    average = WeightAverage(core, optimizer, config.ema) if config.ema > 0 else None
    train_step, validation_step = make_step_functions(
        core, optimizer, config.model.channel_independent, average, config.loss, config.model.max_context
    )
    validation = source.validation_sets(config)

    def validation_loss() -> float:
        return float(np.mean([validation_step(*pair) for pair in validation]))

    def evaluated_weights():
        """The weights validated and saved: the live ones, or their moving average with --ema."""
        return average.swapped() if average is not None else contextlib.nullcontext()

    best, stale, history = math.inf, 0, []
    started = time.monotonic()
    window: list[float] = []
    step = 0
    for step in range(1, config.max_steps + 1):
        horizon = curriculum_horizon(step, config)
        observed = observed_length(rng, min_observed, max_observed, config.model.max_context)
        batch = source.batch(rng, config.batch_size, observed, horizon)
        optimizer.learning_rate.assign(learning_rate(step, config))
        window.append(float(train_step(*batch)))
        elapsed = time.monotonic() - started
        out_of_time = elapsed > config.max_minutes * 60
        if step % config.eval_every and step != config.max_steps and not out_of_time:
            continue
        with evaluated_weights():
            val_loss = validation_loss()
            improved = val_loss < best and horizon == config.model.horizon
            if improved:
                build_model(config.model, core).save(checkpoint_path)
        record = {
            "step": step,
            "horizon": horizon,
            "loss": float(np.mean(window)),
            "val_loss": val_loss,
            "lr": learning_rate(step, config),
            "seconds": round(elapsed, 1),
        }
        history.append(record)
        window = []
        if improved:
            best, stale = val_loss, 0
        elif horizon == config.model.horizon:
            stale += 1
        log(
            f"step {step:6d}  horizon {horizon:3d}  loss {record['loss']:.5f}  val_loss {val_loss:.5f}"
            f"  lr {record['lr']:.2e}  {elapsed:7.1f}s{'  *best' if improved else ''}"
        )
        if out_of_time or stale >= config.patience:
            log("stopping: " + ("time budget reached" if out_of_time else "validation loss stalled"))
            break
    if not checkpoint_path.exists():  # the curriculum never reached the full horizon: keep the last weights
        with evaluated_weights():
            build_model(config.model, core).save(checkpoint_path)
            best = validation_loss()
    model = keras.saving.load_model(checkpoint_path, safe_mode=True)
    return TrainResult(model, best, step, time.monotonic() - started, history)
