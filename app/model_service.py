"""The loaded models and everything the request path needs from them, prepared once at start-up."""

from __future__ import annotations

import io
import logging
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np

from app.batching import MicroBatcher
from app.metrics import Metrics
from app.schemas import ANY_FEATURES, InputLength, LayerInfo, ModelRef, ModelSummary
from app.settings import Settings
from model_store import CorruptModelError
from training.calibration import Calibration
from training.data import unit_waves
from training.heap import freeze_heap
from training.loading import calibration_of, load_model
from training.predict import Predictor

logger = logging.getLogger("app")


@dataclass
class ServedModel:
    """A verified, warmed-up model with its metadata and its batcher."""

    ref: ModelRef
    features: int | None  # None: any number of features (a channel-independent model)
    horizon: int
    min_steps: int
    context: int
    predict: Predictor
    batcher: MicroBatcher
    summary: ModelSummary
    calibration: Calibration | None = None  # prediction intervals, when the version is calibrated
    warming: list[Future] = field(default_factory=list)  # the deferred programs' compilations

    def start(self, warmer: Executor) -> None:
        """Start batching, and compile the programs deferred at loading on `warmer` meanwhile."""
        self.batcher.start()
        self.warming = [warmer.submit(self.predict.warm_up, [shape]) for shape in self.predict.deferred]
        if self.warming:
            self.warming[-1].add_done_callback(self._warmed)

    def stop_warming(self) -> None:
        """Cancel the compilations not begun (a retired version needs none)."""
        for future in self.warming:
            future.cancel()

    def _warmed(self, done: Future) -> None:
        """After the last deferred program: exempt what compiling left from collections, release freed memory
        (the heap was frozen at start-up, before these compilations)."""
        if not done.cancelled() and done.exception() is None:
            freeze_heap()
            logger.info("compiled every program of model %s version %s", self.ref.name, self.ref.version)

    @property
    def example_features(self) -> int:
        """Features of the waves to show and smoke-test it with: its own, or those it was trained on."""
        return self.features or self.summary.trained_features


def load_served_model(settings: Settings, metrics: Metrics, name: str, version: str) -> ServedModel:
    """Load and verify a version of a model, warm up and smoke-test it, and describe it."""
    loaded = load_model(settings.store, name, version)
    architecture = loaded.manifest["architecture"]
    predict = Predictor(loaded.model, settings.max_batch_size)
    predict.defer(predict.shapes)  # all but the smallest batch of the whole context: compiled once serving (start)
    predict.warm_up()  # the smallest batch of the whole context: a wave of any length is answered at once
    min_steps = max(architecture["min_input_length"], settings.limits.min_steps)
    ref = ModelRef(name=loaded.name, version=str(loaded.version))
    input_length = InputLength(min=min_steps, max=settings.limits.max_steps, context=predict.context)
    summary = describe(loaded.model, loaded.manifest, ref, predict.features, input_length)
    smoke_test(predict, predict.features or summary.trained_features, min_steps)
    logger.info("loaded model %s version %s from %s", ref.name, ref.version, loaded.path)
    batcher = MicroBatcher(
        predict,
        predict.buckets[-1],  # rows: max_batch_size waves as wide as the model was trained on
        settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
        workers=settings.inference_workers,
        sizes=predict.buckets,
        rows=predict.rows,
        bucket=predict.length_bucket,
        observe_batch=metrics.batch_observer(ref.name),
    )
    return ServedModel(
        ref=ref,
        features=predict.features,
        horizon=predict.horizon,
        min_steps=min_steps,
        context=predict.context,
        predict=predict,
        batcher=batcher,
        summary=summary,
        calibration=calibration_of(loaded),
    )


def smoke_test(predict: Predictor, features: int, min_steps: int) -> None:
    """Check that real and flat waves of several lengths (`features` wide) give finite answers of the right shape."""
    waves = unit_waves(np.random.default_rng(0), 3, predict.context, features, split="test")
    batch = [waves[0, -min_steps:], waves[1], np.zeros((min_steps + 7, features), np.float32)]
    out = predict(batch)
    if out.shape != (len(batch), predict.horizon, features) or not np.isfinite(out).all():
        raise CorruptModelError(f"smoke prediction failed: shape {out.shape}, finite {np.isfinite(out).all()}")


def describe(model, manifest: dict, ref: ModelRef, features: int | None, input_length: InputLength) -> ModelSummary:
    """The /model/summary answer, built once (`features` None: any number)."""
    architecture = manifest["architecture"]
    text = io.StringIO()
    model.summary(
        print_fn=lambda line, line_break=True: text.write(line + ("\n" if line_break else "")),
        expand_nested=True,
        line_length=100,
    )
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return ModelSummary(
        name=ref.name,
        version=ref.version,
        features=ANY_FEATURES if features is None else features,
        trained_features=architecture["features"],
        horizon=architecture["horizon"],
        input_length=input_length,
        total_params=int(model.count_params()),
        trainable_params=trainable,
        layers=list(layer_rows(model)),
        text=text.getvalue(),
        metrics=manifest.get("evaluation", {}),
        trained_at=manifest.get("created_at"),
    )


def layer_rows(model, prefix: str = ""):
    """Every layer, nested models expanded, as LayerInfo rows."""
    for layer in model.layers:
        try:
            output = layer.output
            shapes = [o.shape for o in output] if isinstance(output, list | tuple) else [output.shape]
            shape = ", ".join(str(tuple(s)) for s in shapes)
        except (AttributeError, ValueError):
            shape = "multiple"
        yield LayerInfo(
            name=prefix + layer.name, type=type(layer).__name__, output_shape=shape, params=int(layer.count_params())
        )
        if hasattr(layer, "layers"):
            yield from layer_rows(layer, prefix + layer.name + "/")
