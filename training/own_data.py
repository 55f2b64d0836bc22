"""The command line's side of training and evaluating on a user's data files (`--data`, `--init-from`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.config import ModelConfig
from training.datafiles import read_data_files
from training.file_source import FileSource, Split


def add_data_arguments(parser: argparse.ArgumentParser, defaults: Split | None) -> None:
    """--data and the split options (defaults None on `evaluate`: then the model's recorded split applies)."""
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="PATH",
        help="a data file of recorded series (.csv or .parquet, wide or long; .npy, .npz); repeat for more",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=defaults and defaults.test_fraction,
        help="last share of every series held out for the test (default 0.2)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=defaults and defaults.val_fraction,
        help="share before the test part that picks the best checkpoint (default 0.1)",
    )
    parser.add_argument(
        "--max-gap-fraction",
        type=float,
        default=defaults and defaults.max_gap_fraction,
        help="largest share of gaps (empty cells, NaN) per series and part, filled as the service fills them",
    )


def init_reference(value: str, name: str) -> tuple[str, str]:
    """`--init-from` as (name, version): NAME, NAME/VERSION, or a bare VERSION of the model being trained."""
    if value.isdigit():
        return name, value
    source, _, version = value.partition("/")
    return source, version or "latest"


def file_source(paths: list[Path], split: Split, model: ModelConfig) -> FileSource:
    """Read the files (each series at least one window long) and split them for training and evaluation."""
    files = read_data_files(paths, model.min_input_length + model.horizon)
    return FileSource(files, split, model)


def recorded_split(manifest: dict, args: argparse.Namespace) -> Split:
    """The split the model was trained with (if it was trained on files), overridden by the command line's."""
    recorded = manifest.get("data", {}).get("split", {})
    base = Split(**{k: recorded[k] for k in ("test_fraction", "val_fraction", "max_gap_fraction") if k in recorded})
    overrides = {
        "test_fraction": args.test_fraction,
        "val_fraction": args.val_fraction,
        "max_gap_fraction": args.max_gap_fraction,
    }
    return Split(**{**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def architecture_of(manifest: dict) -> ModelConfig:
    """The ModelConfig a published version was built with."""
    known = set(ModelConfig.__dataclass_fields__)
    return ModelConfig(**{k: v for k, v in manifest["architecture"].items() if k in known})


def evaluate_stored(store: Path, loaded, paths: list[Path], args: argparse.Namespace) -> dict:
    """Evaluate a loaded version, and the version it was fine-tuned from (when still in the store), on the
    test part of the files."""
    from model_store import ModelNotFoundError
    from training.data_evaluation import evaluate_on_data
    from training.loading import load_model
    from training.predict import Predictor

    split = recorded_split(loaded.manifest, args)
    source = file_source(paths, split, architecture_of(loaded.manifest))
    models = {"model": Predictor(loaded.model)}
    lineage = loaded.manifest.get("training", {}).get("initialized_from")
    if lineage:
        try:
            initial = load_model(store, lineage.get("name", loaded.name), lineage["version"])
            models["initial_model"] = Predictor(initial.model)
        except ModelNotFoundError:
            pass
    report = evaluate_on_data(models, source, loaded.manifest.get("calibration"))
    return {"data": source.describe(), "initialized_from": lineage, **report}
