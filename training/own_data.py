"""Training and evaluating on a user's data files (`--data`): reading and splitting them, the split and the
architecture a version was trained with, and the evaluation of a published version on them."""

from __future__ import annotations

from pathlib import Path

from training.config import ModelConfig
from training.datafiles import read_data_files
from training.file_source import FileSource, Split


def file_source(paths: list[Path], split: Split, model: ModelConfig) -> FileSource:
    """Read the files (each series at least one window long) and split them for training and evaluation."""
    files = read_data_files(paths, model.min_input_length + model.horizon)
    return FileSource(files, split, model)


def recorded_split(manifest: dict, overrides: dict[str, float | None]) -> Split:
    """The split the model was trained with (if it was trained on files), with the `overrides` that are not None
    (test_fraction, val_fraction, max_gap_fraction)."""
    recorded = manifest.get("data", {}).get("split", {})
    base = Split(**{k: recorded[k] for k in ("test_fraction", "val_fraction", "max_gap_fraction") if k in recorded})
    return Split(**{**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def architecture_of(manifest: dict) -> ModelConfig:
    """The ModelConfig a published version was built with."""
    known = set(ModelConfig.__dataclass_fields__)
    return ModelConfig(**{k: v for k, v in manifest["architecture"].items() if k in known})


def evaluate_stored(store: Path, loaded, paths: list[Path], split_overrides: dict[str, float | None]) -> dict:
    """Evaluate a loaded version, and the version it was fine-tuned from (when still in the store), on the
    test part of the files, split as it was trained but for the `split_overrides` (see `recorded_split`)."""
    from model_store import ModelNotFoundError
    from training.data_evaluation import evaluate_on_data
    from training.loading import load_model
    from training.predict import Predictor

    split = recorded_split(loaded.manifest, split_overrides)
    source = file_source(paths, split, architecture_of(loaded.manifest))
    models = {"model": Predictor(loaded.model)}
    lineage = loaded.manifest.get("training", {}).get("initialized_from")
    if lineage:
        try:
            initial = load_model(store, lineage.get("name", loaded.name), lineage["version"])
            models["initial_model"] = Predictor(initial.model)
        except ModelNotFoundError:
            pass
    report = evaluate_on_data(models, source, loaded.calibration)
    return {"data": source.describe(), "initialized_from": lineage, **report}
