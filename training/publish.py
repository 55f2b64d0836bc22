"""Train a model, calibrate and evaluate it, and publish it as the next version of a store, with its manifest.

The trained checkpoint is kept aside in the store (`.training-*`) while it is calibrated and evaluated; the
version is published atomically (`model_store.write_version`), and a failure after training keeps the weights
at `<store>/.unpublished-<name>-*/best.keras`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_store import MODEL_FILE, write_version
from training.config import ModelConfig, TrainConfig
from training.data_evaluation import evaluate_on_data
from training.evaluate import evaluate
from training.file_source import FileSource
from training.loading import LoadedModel
from training.predict import Predictor
from training.real_series import evaluate_real, model_forecast
from training.synthetic import SyntheticSource
from training.train import BatchSource, train

Log = Callable[[str], None]
Calibrate = Callable[[Predictor, Any, TrainConfig, Log], dict | None]  # (predictor, source, config, log) -> record


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train_and_publish(
    store: Path,
    name: str,
    config: TrainConfig,
    *,
    command: str,
    calibrate: Calibrate,
    source: BatchSource | None = None,
    initial: LoadedModel | None = None,
    eval_waves: int = 470,
    log: Log = log_to_stderr,
) -> dict:
    """Train `config` on `source` (None: the reference sines), from `initial`'s weights when given; calibrate its
    bands with `calibrate`; evaluate it (on the files' test parts for a FileSource, else on `eval_waves` sine
    test waves per variant, and zero-shot on the real series for a SyntheticSource); publish it as the next
    version of `name` in `store`. Returns the version's name, number, folder and a summary of its evaluation."""
    store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".training-{name}-", dir=store))
    trained = published = False
    try:
        log(f"training {name}: {json.dumps(config.to_dict())}")
        result = train(config, work / "best.keras", log=log, initial=initial.model if initial else None, source=source)
        trained = True
        predictor = Predictor(result.model)  # one compiled inference path for calibration and evaluation
        calibration = calibrate(predictor, source, config, log)
        if isinstance(source, FileSource):
            log("evaluating on the test part of the data files")
            models = {"model": predictor} | ({"initial_model": Predictor(initial.model)} if initial else {})
            evaluation = evaluate_on_data(models, source, calibration)
        else:
            log(f"evaluating on {eval_waves} test waves per variant")
            evaluation = evaluate(predictor, eval_waves, config.model.features, config.model.horizon, calibration)
        real_evaluation = None
        if isinstance(source, SyntheticSource):  # a model for real waves that never saw one: its zero-shot score
            log("evaluating zero-shot on the real recorded series")
            forecast = model_forecast(predictor)
            real_evaluation = evaluate_real(
                forecast,
                config.model.max_context,
                config.model.horizon,
                calibration=calibration,
                reads=config.model.reads,
            )
        manifest = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "architecture": {
                **config.model.to_dict(),
                "description": architecture_description(config.model),
                "total_params": int(result.model.count_params()),
            },
            "data": source.describe() if source else config.data.to_dict(),
            "seed": config.seed,
            "training": {
                "command": command,
                "config": config.to_dict(),
                "steps": result.steps,
                "wall_seconds": round(result.wall_seconds, 1),
                "best_validation_loss": result.best_validation_loss,
                "cpu_count": os.cpu_count(),
                "history": result.history,
                "initialized_from": lineage_of(initial) if initial else None,
            },
            "evaluation": evaluation,
            "real_evaluation": real_evaluation,
            "libraries": library_versions(),
        }
        version = write_version(store, name, work / "best.keras", manifest, calibration)
        published = True
    finally:
        if trained and not published:  # a failure after training must not throw the trained weights away
            kept = work.rename(work.with_name(work.name.replace(".training-", ".unpublished-", 1)))
            log(f"train: not published; the trained model is kept at {kept / 'best.keras'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {"name": name, "version": version, "path": str(store / name / str(version)), **summary(evaluation)}


def lineage_of(initial: LoadedModel) -> dict:
    """What a fine-tuned version records about the version it started from (its own lineage nested)."""
    previous = initial.manifest["training"]
    return {
        "name": initial.name,
        "version": initial.version,
        "sha256": initial.manifest["files"][MODEL_FILE],
        "command": previous["command"],
        "steps": previous["steps"],
        "wall_seconds": previous["wall_seconds"],
        "initialized_from": previous.get("initialized_from"),
    }


def library_versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow

    return {
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def architecture_description(config: ModelConfig) -> str:
    """The architecture in one sentence, for the manifest."""
    layout = "each feature as its own sequence (features folded into the batch, shared weights)"
    if not config.channel_independent:
        layout = "all features through one stack (the reference layout)"
    state = "decoder layer i starts from encoder layer i's final state"
    if config.decoder_state == "first_layer":
        state = "decoder layer 1 starts from the encoder's final state, the others from zeros (the reference)"
    head = " (residual: it predicts each step's change)" if config.residual_head else ""
    if config.seasonal_lag:
        back = "the value one season" if config.seasons_back == 1 else f"the values 1..{config.seasons_back} seasons"
        head += f", also fed {back} (the observed autocorrelation peak) back"
    return (
        f"encoder {config.encoder_depth} x LSTM({config.units}), decoder {config.decoder_depth} x LSTM({config.units})"
        f" + Dense{head}, autoregressive for {config.horizon} steps; {layout}; {state}; per-wave, per-feature normalization"
        f" inside the model; only the last {config.max_context} observed steps are read"
        + (f" (the season and its look back: the last {config.reads})" if config.reads > config.max_context else "")
    )


def summary(evaluation: dict) -> dict:
    """MAE / amplitude per variant beside its target; on data files, MAE relative to seasonal naive."""
    if "overall" in evaluation:
        return {
            "relative_to_seasonal_naive": evaluation["overall"],
            "beats_seasonal_naive": evaluation["beats_seasonal_naive"],
        }
    return {
        name: {"mae": v["model"]["mae"], "target": v["target"], "meets_target": v["meets_target"]}
        for name, v in evaluation["variants"].items()
    }
