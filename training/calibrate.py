"""The calibration run: fitting a model's prediction intervals on held-out windows (sine, synthetic or a user's
validation windows), at training time and again for a published version (`python -m training calibrate`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model_store import MODEL_FILE, load_manifest, resolve_version, write_version
from training.calibration import BACKTEST_MIN_STEPS, BACKTEST_STEPS_BACK, CalibrationError, backtest_origins, fit
from training.config import TrainConfig
from training.evaluate import evaluate, evaluation_sets
from training.loading import load_model
from training.own_data import architecture_of
from training.predict import Predictor
from training.real_series import evaluate_real, model_forecast
from training.synthetic import RECORDED_LIKE_FAMILIES, RECORDED_LIKE_WAVES, SyntheticSource, synthetic_source_of


def calibrate(
    predict: Callable[[np.ndarray], np.ndarray],
    observed: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    context: int,
    pooled: bool,
) -> dict[str, Any]:
    """Calibrate a model on held-out windows: batches of equal length, observed (n, T, F) and targets (n, H, F);
    the model also completes each window from its backtest origins."""
    backtests = [
        [
            predict(seen[:, :origin])
            for origin in backtest_origins(seen.shape[1], BACKTEST_STEPS_BACK, BACKTEST_MIN_STEPS)
        ]
        for seen in observed
    ]
    return fit([predict(seen) for seen in observed], observed, targets, context, pooled, backtests)


CALIBRATION_SEED = 20_240_605
SINE_VARIANTS = "unit, scaled, noisy, short, shifted"
SYNTHETIC_SINE_WAVES = 2000  # sine windows per variant beside a synthetic model's own calibration windows


def sine_calibration_sets(architecture: dict[str, Any], waves: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observed, target) windows of the validation split (category 2), `waves` of each test variant (unit,
    scaled, noisy, short, shifted) in 50 observed lengths each, drawn with their own seed."""
    sets = evaluation_sets(
        waves, architecture["features"], architecture["horizon"], groups=50, seed=CALIBRATION_SEED, split="validation"
    )
    return [pair for dataset in sets.values() for pair in zip(dataset.observed, dataset.target, strict=True)]


def sine_calibration(
    predict: Callable[[np.ndarray], np.ndarray], architecture: dict[str, Any], waves: int = 1000
) -> dict[str, Any]:
    """Calibrate on the sine calibration windows (`sine_calibration_sets`)."""
    pairs = sine_calibration_sets(architecture, waves)
    record = calibrate(
        predict, *zip(*pairs, strict=True), architecture["max_context"], architecture["channel_independent"]
    )
    return {"source": f"sines, validation split: {waves} windows of each of {SINE_VARIANTS}", **record}


def calibrate_source(predict: Callable[[np.ndarray], np.ndarray], source: Any, config: Any) -> dict[str, Any]:
    """Calibrate a freshly trained model: on the sine calibration set when `source` is None (the reference
    sines), on the sine calibration set and the synthetic family's calibration windows, else on the full-horizon
    validation windows of its training source (e.g. a user's files)."""
    model = config.model
    if source is None:
        return sine_calibration(predict, model.to_dict())
    if isinstance(source, SyntheticSource):
        synthetic, recorded = source.calibration_sets(config), source.recorded_like_sets(config)
        sets = sine_calibration_sets(model.to_dict(), SYNTHETIC_SINE_WAVES) + synthetic + recorded
        described = (
            f"sines, validation split: {SYNTHETIC_SINE_WAVES} windows of each of {SINE_VARIANTS}; synthetic "
            f"family: {config.validation_waves} windows at each of {len(synthetic)} observed lengths; "
            f"recorded-like synthetic series ({', '.join(RECORDED_LIKE_FAMILIES)}; noisy targets): "
            f"{RECORDED_LIKE_WAVES} windows at each of {len(recorded)} observed lengths"
        )
    else:
        sets = source.validation_sets(config)
        described = f"validation windows of the training source ({source.describe()['source']})"
    pairs = [(seen, target) for seen, target in sets if target.shape[1] == model.horizon]
    if not pairs:
        raise CalibrationError("the training source has no full-horizon validation windows")
    record = calibrate(predict, *zip(*pairs, strict=True), model.max_context, model.channel_independent)
    return {"source": described, **record}


def calibrate_or_log(predict: Callable[[np.ndarray], np.ndarray], source: Any, config: TrainConfig, log) -> dict | None:
    """`calibrate_source` for `train`: None, logged, when the data are too few for a calibration."""
    log("calibrating prediction intervals on held-out validation windows")
    try:
        return calibrate_source(predict, source, config)
    except CalibrationError as error:
        log(f"no prediction intervals: {error}")
        return None


def recalibrate(store: Path, name: str, version: str, waves: int, eval_waves: int, command: str) -> dict:
    """Calibrate a published version again and publish the result as the next version (same model file): on the
    sine calibration set (`waves` windows per variant), or for a model trained on the synthetic family on that
    family's calibration windows too (then its real-series evaluation is redone with the bands); the test-set
    evaluation is redone on `eval_waves` waves per variant. `command` is recorded in the manifest."""
    number = resolve_version(store, name, version)
    data = load_manifest(store, name, number).get("data", {})
    source = data.get("source", "sines")
    if source not in ("sines", "synthetic"):
        raise CalibrationError(f"{name}/{number} was trained on {source}; `train` calibrates such models")
    loaded = load_model(store, name, number)
    architecture = loaded.manifest["architecture"]
    predictor = Predictor(loaded.model)
    updates = {}
    if source == "synthetic":
        model = architecture_of(loaded.manifest)
        recorded = loaded.manifest["training"]["config"]
        config = TrainConfig(model=model, seed=recorded["seed"], validation_waves=recorded["validation_waves"])
        calibration = calibrate_source(predictor, synthetic_source_of(data, model.features), config)
        forecast = model_forecast(predictor)
        real = evaluate_real(forecast, model.max_context, model.horizon, calibration=calibration, reads=model.reads)
        updates["real_evaluation"] = real
    else:
        calibration = sine_calibration(predictor, architecture, waves)
    evaluation = evaluate(predictor, eval_waves, architecture["features"], architecture["horizon"], calibration)
    model_sha256 = loaded.manifest["files"][MODEL_FILE]
    manifest = {
        **{k: v for k, v in loaded.manifest.items() if k not in ("name", "version", "files")},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "evaluation": evaluation,
        **updates,
        "calibrated_from": {"version": loaded.version, "sha256": model_sha256, "command": command},
    }
    published = write_version(store, name, loaded.path, manifest, calibration)
    intervals = {variant: entry["intervals"] for variant, entry in evaluation["variants"].items()}
    answer = {"name": name, "version": published, "calibrated_from": loaded.version, "intervals": intervals}
    if "real_evaluation" in updates:
        answer["real_mean_coverage"] = updates["real_evaluation"]["mean_coverage"]
    return answer
