"""`python -m training`: train, evaluate and export models in a versioned store."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from training.config import TRAINED_MODEL, ModelConfig, TrainConfig
from training.file_source import Split
from training.own_data import add_data_arguments

QUICK = TrainConfig(
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and publish it as the next version")
    train.add_argument("--store", type=Path, required=True, help="model store folder")
    train.add_argument("--name", default="wave", help="model name inside the store (default: wave)")
    train.add_argument("--quick", action="store_true", help="tiny model, about a minute on 2 cores")
    train.add_argument("--seed", type=int, help="random seed (default 0): the run is reproducible from it")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--max-steps", type=int, help="steps of the learning-rate schedule and the step limit")
    train.add_argument("--max-minutes", type=float, help="wall-time budget; the best checkpoint is kept")
    train.add_argument("--curriculum-steps", type=int, help="steps to grow the trained horizon to the full one")
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--final-learning-rate", type=float, help="where the cosine schedule ends (default: 2e-5)")
    train.add_argument(
        "--ema",
        type=float,
        help="decay (e.g. 0.999) of a moving average of the weights that is validated and kept instead of them",
    )
    train.add_argument(
        "--loss",
        choices=["mse", "mae"],
        help="error trained and validated on normalized values: squared (default) or absolute (as the metric)",
    )
    train.add_argument(
        "--residual-head",
        action="store_true",
        help="each decoder step predicts the change from its previous value (a new architecture: not with --init-from)",
    )
    train.add_argument(
        "--seasonal-lag",
        action="store_true",
        help="the decoder also sees the value one season back (the observed autocorrelation peak); with --init-from"
        " it widens the initial model, whose predictions it starts from",
    )
    train.add_argument(
        "--seasons-back",
        type=int,
        choices=range(1, 5),
        metavar="N",
        help="with --seasonal-lag (implied): the decoder sees the values 1..N seasons back (default 1); with"
        " --init-from it widens the initial model, whose predictions it starts from",
    )
    train.add_argument("--units", type=int, help="LSTM units per layer (reference: 40)")
    train.add_argument("--depth", type=int, help="LSTM layers in the encoder and in the decoder (reference: 4)")
    train.add_argument("--context", type=int, help="most observed steps the model reads (default: 300)")
    train.add_argument(
        "--synthetic",
        action="store_true",
        help="train on the broad synthetic family (training/synthetic.py) instead of the reference sines",
    )
    train.add_argument(
        "--families",
        metavar="NAME=WEIGHT,...",
        type=family_weights,
        help="with --synthetic: the family mix (default: training.synthetic.FAMILY_WEIGHTS); unnamed families get none",
    )
    train.add_argument(
        "--integer-periods",
        metavar="FRACTION",
        type=fraction,
        help="with --synthetic: the share of seasons with a whole number of steps per cycle (default 0)",
    )
    train.add_argument(
        "--decoder-state",
        choices=["first_layer", "all_layers"],
        help="decoder layers start from: the encoder's final state in layer 1 only (reference), or per layer",
    )
    train.add_argument(
        "--reference-layout",
        action="store_true",
        help="the reference exactly: all features through one LSTM stack, decoder layers 2.. start at zero",
    )
    train.add_argument(
        "--init-from",
        metavar="NAME[/VERSION]",
        help="fine-tune: start from the weights (and architecture) of a published model in --store, any name, "
        "its latest version or VERSION; a bare number is a version of --name",
    )
    train.add_argument("--eval-waves", type=int, default=470, help="test waves per evaluation variant")
    add_data_arguments(train, Split())

    evaluate = commands.add_parser("evaluate", help="evaluate a published version; prints JSON")
    evaluate.add_argument("--store", type=Path, required=True)
    evaluate.add_argument("--name", default="wave")
    evaluate.add_argument("--version", default="latest")
    evaluate.add_argument("--waves", type=int, default=470, help="test waves per variant (at least 470)")
    evaluate.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    evaluate.add_argument(
        "--real",
        action="store_true",
        help="score on real recorded series (training/real_series.py; needs the extra `real`) instead of sines",
    )
    add_data_arguments(evaluate, None)

    calibrate = commands.add_parser(
        "calibrate",
        help="calibrate prediction intervals of a version (trained on sines or on the synthetic family) again and "
        "publish them as the next version",
    )
    calibrate.add_argument("--store", type=Path, required=True)
    calibrate.add_argument("--name", default="wave")
    calibrate.add_argument("--version", default="latest")
    calibrate.add_argument(
        "--waves", type=int, default=1000, help="sine models: calibration windows per variant (validation split)"
    )
    calibrate.add_argument("--eval-waves", type=int, default=470, help="test waves per variant for the coverage check")

    export = commands.add_parser(
        "export", help="write a version as a TensorFlow SavedModel in TensorFlow Serving's layout; prints JSON"
    )
    export.add_argument("--store", type=Path, required=True, help="model store folder")
    export.add_argument("--name", default="wave", help="model name inside the store (default: wave)")
    export.add_argument("--version", default="latest", help="version number, or 'latest' (default)")
    export.add_argument("--out", type=Path, required=True, help="base path: writes OUT/<name>/<version>/saved_model.pb")
    args = parser.parse_args(argv)
    if getattr(args, "families", None) and not args.synthetic:
        parser.error("--families needs --synthetic")
    if getattr(args, "integer_periods", None) is not None and not args.synthetic:
        parser.error("--integer-periods needs --synthetic")
    return args


def fraction(text: str) -> float:
    """An argparse type: a number in 0..1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in 0..1")
    return value


def family_weights(text: str) -> dict[str, float]:
    from training.synthetic import parse_family_weights

    try:
        return parse_family_weights(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (default or --quick) with the command-line overrides applied."""
    config = QUICK if args.quick else TrainConfig()
    overrides = {
        "seed": args.seed,
        "batch_size": args.batch_size,
        "max_steps": args.max_steps,
        "max_minutes": args.max_minutes,
        "curriculum_steps": args.curriculum_steps,
        "learning_rate": args.learning_rate,
        "final_learning_rate": args.final_learning_rate,
        "ema": args.ema,
        "loss": args.loss,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    model_overrides = {
        "units": args.units,
        "encoder_depth": args.depth,
        "decoder_depth": args.depth,
        "decoder_state": args.decoder_state,
        "max_context": args.context,
        "residual_head": args.residual_head or None,
        "seasonal_lag": (args.seasonal_lag or args.seasons_back is not None) or None,
        "seasons_back": args.seasons_back,
    }
    model = replace(config.model, **{k: v for k, v in model_overrides.items() if v is not None})
    if args.reference_layout:
        model = replace(model, channel_independent=False, decoder_state="first_layer")
    return replace(config, model=model)


def training_source(args: argparse.Namespace, config: TrainConfig):
    """The BatchSource of --data (the files' series, split in time) or --synthetic (observed up to the model's
    context), or None for the reference sines."""
    if args.data:
        from training.own_data import file_source

        split = Split(args.test_fraction, args.val_fraction, args.max_gap_fraction)
        return file_source(args.data, split, config.model)
    if not args.synthetic:
        return None
    from training.synthetic import FAMILY_WEIGHTS, SyntheticSource

    weights = args.families or FAMILY_WEIGHTS
    return SyntheticSource(
        config.model.features,
        max_observed=config.model.max_context,
        weights=tuple(weights.items()),
        integer_periods=args.integer_periods or 0.0,
    )


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


def run_train(args: argparse.Namespace) -> dict:
    from model_store import write_version
    from training.evaluate import evaluate
    from training.predict import Predictor
    from training.train import train

    config = train_config(args)
    initial = lineage = None
    if args.init_from is not None:
        from training.loading import load_model
        from training.own_data import architecture_of, init_reference

        initial = load_model(args.store, *init_reference(args.init_from, args.name))
        config = replace(config, model=architecture_of(initial.manifest))
        if args.seasonal_lag or args.seasons_back is not None:
            seasons_back = args.seasons_back or config.model.seasons_back
            config = replace(config, model=replace(config.model, seasonal_lag=True, seasons_back=seasons_back))
        previous = initial.manifest["training"]
        lineage = {
            "name": initial.name,
            "version": initial.version,
            "sha256": initial.manifest["sha256"],
            "command": previous["command"],
            "steps": previous["steps"],
            "wall_seconds": previous["wall_seconds"],
            "initialized_from": previous.get("initialized_from"),
        }
    args.store.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".training-{args.name}-", dir=args.store))
    trained = published = False
    try:
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        log(f"training {args.name}: {json.dumps(config.to_dict())}")
        source = training_source(args, config)
        result = train(config, work / "best.keras", log=log, initial=initial.model if initial else None, source=source)
        trained = True
        predictor = Predictor(result.model)  # one compiled inference path for calibration and evaluation
        calibration = calibrate_or_log(predictor, source, config, log)
        if args.data:
            from training.data_evaluation import evaluate_on_data

            log("evaluating on the test part of the data files")
            models = {"model": predictor} | ({"initial_model": Predictor(initial.model)} if initial else {})
            evaluation = evaluate_on_data(models, source, calibration)
        else:
            log(f"evaluating on {args.eval_waves} test waves per variant")
            evaluation = evaluate(predictor, args.eval_waves, config.model.features, config.model.horizon, calibration)
        real_evaluation = None
        if args.synthetic:  # a model for real waves that never saw one: its zero-shot score on recorded series
            from training.real_series import evaluate_real, model_forecast

            log("evaluating zero-shot on the real recorded series")
            forecast = model_forecast(predictor)
            real_evaluation = evaluate_real(
                forecast, config.model.max_context, config.model.horizon, calibration=calibration
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
                "command": "python -m training " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
                "config": config.to_dict(),
                "steps": result.steps,
                "wall_seconds": round(result.wall_seconds, 1),
                "best_validation_loss": result.best_validation_loss,
                "cpu_count": os.cpu_count(),
                "history": result.history,
                "initialized_from": lineage,
            },
            "evaluation": evaluation,
            "real_evaluation": real_evaluation,
            "calibration": calibration,
            "libraries": library_versions(),
        }
        version = write_version(args.store, args.name, work / "best.keras", manifest)
        published = True
    finally:
        if trained and not published:  # a failure after training must not throw the trained weights away
            kept = work.rename(work.with_name(work.name.replace(".training-", ".unpublished-", 1)))
            print(f"train: not published; the trained model is kept at {kept / 'best.keras'}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "name": args.name,
        "version": version,
        "path": str(args.store / args.name / str(version)),
        **summary(evaluation),
    }


def calibrate_or_log(predictor, source, config: TrainConfig, log) -> dict | None:
    """Prediction-interval calibration of a trained model (None, logged, when its data are too few)."""
    from training.calibration import CalibrationError, calibrate_source

    log("calibrating prediction intervals on held-out validation windows")
    try:
        return calibrate_source(predictor, source, config)
    except CalibrationError as error:
        log(f"no prediction intervals: {error}")
        return None


def run_calibrate(args: argparse.Namespace) -> dict:
    """Calibrate a published version again and publish the result as the next version: on the sine calibration
    set, or for a model trained on the synthetic family on that family's validation windows (then its
    real-series evaluation is redone with the bands)."""
    from model_store import load_manifest, resolve_version, write_version
    from training.calibration import CalibrationError, calibrate_source, sine_calibration
    from training.evaluate import evaluate
    from training.loading import load_model
    from training.own_data import architecture_of
    from training.predict import Predictor

    version = resolve_version(args.store, args.name, args.version)
    data = load_manifest(args.store, args.name, version).get("data", {})
    source = data.get("source", "sines")
    if source not in ("sines", "synthetic"):
        raise CalibrationError(f"{args.name}/{version} was trained on {source}; `train` calibrates such models")
    loaded = load_model(args.store, args.name, version)
    architecture = loaded.manifest["architecture"]
    predictor = Predictor(loaded.model)
    updates = {}
    if source == "synthetic":
        from training.real_series import evaluate_real, model_forecast
        from training.synthetic import synthetic_source_of

        model = architecture_of(loaded.manifest)
        recorded = loaded.manifest["training"]["config"]
        config = TrainConfig(model=model, seed=recorded["seed"], validation_waves=recorded["validation_waves"])
        calibration = calibrate_source(predictor, synthetic_source_of(data, model.features), config)
        real = evaluate_real(model_forecast(predictor), model.max_context, model.horizon, calibration=calibration)
        updates["real_evaluation"] = real
    else:
        calibration = sine_calibration(predictor, architecture, args.waves)
    evaluation = evaluate(predictor, args.eval_waves, architecture["features"], architecture["horizon"], calibration)
    command = "python -m training " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    manifest = {
        **{k: v for k, v in loaded.manifest.items() if k not in ("name", "version", "model_file", "sha256")},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "evaluation": evaluation,
        **updates,
        "calibration": calibration,
        "calibrated_from": {"version": loaded.version, "sha256": loaded.manifest["sha256"], "command": command},
    }
    version = write_version(args.store, args.name, loaded.path, manifest)
    intervals = {name: variant["intervals"] for name, variant in evaluation["variants"].items()}
    answer = {"name": args.name, "version": version, "calibrated_from": loaded.version, "intervals": intervals}
    if "real_evaluation" in updates:
        answer["real_mean_coverage"] = updates["real_evaluation"]["mean_coverage"]
    return answer


def architecture_description(config: ModelConfig) -> str:
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


def run_evaluate(args: argparse.Namespace) -> dict:
    from training.evaluate import evaluate
    from training.loading import load_model
    from training.predict import Predictor

    loaded = load_model(args.store, args.name, args.version)
    config = loaded.manifest["architecture"]
    started = time.monotonic()
    if args.real:
        from training.real_series import evaluate_real, model_forecast

        calibration = loaded.manifest.get("calibration")
        forecast = model_forecast(Predictor(loaded.model))
        report = evaluate_real(forecast, config["max_context"], config["horizon"], calibration=calibration)
    elif args.data:
        from training.own_data import evaluate_stored

        report = evaluate_stored(args.store, loaded, args.data, args)
    else:
        calibration = loaded.manifest.get("calibration")
        report = evaluate(Predictor(loaded.model), args.waves, config["features"], config["horizon"], calibration)
    return {"name": loaded.name, "version": loaded.version, "seconds": round(time.monotonic() - started, 1), **report}


def run_export(args: argparse.Namespace) -> dict:
    from training.export import export_version

    return export_version(args.store, args.name, args.version, args.out)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    args.argv = argv
    from model_store import StoreError
    from training.calibration import CalibrationError
    from training.datafiles import DataFileError

    try:
        if args.command == "train":
            print(json.dumps(run_train(args), indent=2))
            return 0
        if args.command == "evaluate":
            report = run_evaluate(args)
        if args.command == "calibrate":
            print(json.dumps(run_calibrate(args), indent=2))
            return 0
    except (CalibrationError, DataFileError, StoreError) as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    if args.command == "evaluate":
        if args.real and args.markdown:
            from training.real_series import markdown_table

            print(markdown_table(report, f"{report['name']}/{report['version']}"))
        elif args.data and args.markdown:
            from training.data_evaluation import markdown_table

            print(markdown_table(report))
        elif args.markdown:
            from training.report import markdown_table

            print(markdown_table(report))
        else:
            print(json.dumps(report, indent=2))
    elif args.command == "export":
        from model_store import StoreError
        from training.export import ExportError

        try:
            print(json.dumps(run_export(args), indent=2))
        except (ExportError, StoreError) as error:
            print(f"export failed: {error}", file=sys.stderr)
            return 1
    return 0
