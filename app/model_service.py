"""The loaded model and everything the request path needs from it, prepared once at start-up."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

from app.batching import MicroBatcher
from app.limits import LIMITS
from app.metrics import Metrics
from app.schemas import InputLength, LayerInfo, ModelRef, ModelSummary
from app.settings import Settings
from model_store import CorruptModelError
from training.data import unit_waves
from training.loading import load_model
from training.predict import Predictor

logger = logging.getLogger("app")


@dataclass
class ServedModel:
    """A verified, warmed-up model with its metadata and its batcher."""

    ref: ModelRef
    features: int
    horizon: int
    min_steps: int
    context: int
    predict: Predictor
    batcher: MicroBatcher
    summary: ModelSummary


def load_served_model(settings: Settings, metrics: Metrics, version: str | None = None) -> ServedModel:
    """Load and verify a version (default: the configured one), warm up and smoke-test it, and describe it."""
    loaded = load_model(settings.store, settings.model_name, version or settings.model_version)
    architecture = loaded.manifest["architecture"]
    predict = Predictor(loaded.model, settings.max_batch_size)
    predict.warm_up()
    features, horizon, context = predict.features, predict.horizon, predict.context
    min_steps = max(architecture["min_input_length"], LIMITS.min_steps)
    smoke_test(predict, min_steps)
    ref = ModelRef(name=loaded.name, version=str(loaded.version))
    logger.info("loaded model %s version %s from %s", ref.name, ref.version, loaded.path)
    batcher = MicroBatcher(
        predict,
        settings.max_batch_size,
        settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
        workers=settings.inference_workers,
        sizes=predict.buckets,
        observe_batch=metrics.observe_batch,
    )
    return ServedModel(
        ref=ref,
        features=features,
        horizon=horizon,
        min_steps=min_steps,
        context=context,
        predict=predict,
        batcher=batcher,
        summary=describe(loaded.model, loaded.manifest, ref, min_steps, context),
    )


def smoke_test(predict: Predictor, min_steps: int) -> None:
    """Check that real and flat waves of several lengths give finite answers of the right shape."""
    waves = unit_waves(np.random.default_rng(0), 3, predict.context, predict.features, split="test")
    batch = [waves[0, -min_steps:], waves[1], np.zeros((min_steps + 7, predict.features), np.float32)]
    out = predict(batch)
    if out.shape != (len(batch), predict.horizon, predict.features) or not np.isfinite(out).all():
        raise CorruptModelError(f"smoke prediction failed: shape {out.shape}, finite {np.isfinite(out).all()}")


def describe(model, manifest: dict, ref: ModelRef, min_steps: int, context: int) -> ModelSummary:
    """The /model/summary answer, built once."""
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
        features=architecture["features"],
        horizon=architecture["horizon"],
        input_length=InputLength(min=min_steps, max=LIMITS.max_steps, context=context),
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
