"""`python -m training`: train, evaluate, calibrate and export models in a versioned store.

Every command works on the committed store (the one `wave-serve` serves) unless `--store` names another, and on
the service's default model unless `--name` names another (`train` always needs `--name`: it publishes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from model_store.defaults import DEFAULT_MODEL, DEFAULT_STORE
from training.config import QUICK, TrainConfig
from training.file_source import Split

STORE_HELP = "model store folder (default: the committed store that `wave-serve` serves, %(default)s)"
NAME_HELP = "model name inside the store (default: %(default)s, the service's default model)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and publish it as the next version")
    train.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    train.add_argument(
        "--name",
        required=True,
        help="model name inside the store; no default: the version published becomes that name's latest, which the"
        f" service serves (`{DEFAULT_MODEL}` is its default model)",
    )
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
    train.add_argument(
        "--history",
        type=int,
        metavar="STEPS",
        help="with --seasonal-lag (implied): the season and its look back come from up to STEPS observed steps, the"
        " encoder still reads the last --context of them; synthetic windows are then drawn up to STEPS long (with"
        " --init-from it keeps the initial model's weights: the look back has none)",
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
    evaluate.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    evaluate.add_argument("--name", default=DEFAULT_MODEL, help=NAME_HELP)
    evaluate.add_argument("--version", default="latest", help="version number, or 'latest' (default)")
    evaluate.add_argument("--waves", type=int, default=470, help="test waves per variant (at least 470)")
    evaluate.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    evaluate.add_argument(
        "--real",
        action="store_true",
        help="score on real recorded series (training/real_series.py; needs the extra `real`) instead of sines",
    )
    evaluate.add_argument(
        "--check-series",
        action="store_true",
        help="with --real: also the check series (a stock price, daily weather), which choose nothing",
    )
    add_data_arguments(evaluate, None)

    calibrate = commands.add_parser(
        "calibrate",
        help="calibrate prediction intervals of a version (trained on sines or on the synthetic family) again and "
        "publish them as the next version",
    )
    calibrate.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    calibrate.add_argument("--name", default=DEFAULT_MODEL, help=NAME_HELP)
    calibrate.add_argument("--version", default="latest", help="version number, or 'latest' (default)")
    calibrate.add_argument(
        "--waves", type=int, default=1000, help="sine models: calibration windows per variant (validation split)"
    )
    calibrate.add_argument("--eval-waves", type=int, default=470, help="test waves per variant for the coverage check")

    export = commands.add_parser(
        "export", help="write a version as a TensorFlow SavedModel in TensorFlow Serving's layout; prints JSON"
    )
    export.add_argument("--store", type=Path, default=DEFAULT_STORE, help=STORE_HELP)
    export.add_argument("--name", default=DEFAULT_MODEL, help=NAME_HELP)
    export.add_argument("--version", default="latest", help="version number, or 'latest' (default)")
    export.add_argument("--out", type=Path, required=True, help="base path: writes OUT/<name>/<version>/saved_model.pb")
    args = parser.parse_args(argv)
    if getattr(args, "families", None) and not args.synthetic:
        parser.error("--families needs --synthetic")
    if getattr(args, "integer_periods", None) is not None and not args.synthetic:
        parser.error("--integer-periods needs --synthetic")
    if getattr(args, "check_series", False) and not args.real:
        parser.error("--check-series needs --real")
    return args


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


def split_overrides(args: argparse.Namespace) -> dict[str, float | None]:
    """The split options as given (None: not given)."""
    return {
        "test_fraction": args.test_fraction,
        "val_fraction": args.val_fraction,
        "max_gap_fraction": args.max_gap_fraction,
    }


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


def init_reference(value: str, name: str) -> tuple[str, str]:
    """`--init-from` as (name, version): NAME, NAME/VERSION, or a bare VERSION of the model being trained."""
    if value.isdigit():
        return name, value
    source, _, version = value.partition("/")
    return source, version or "latest"


def train_config(args: argparse.Namespace, initial_manifest: dict | None = None) -> TrainConfig:
    """The preset (default or --quick) with the command-line overrides applied; with `--init-from`, the initial
    version's architecture (widened by --seasonal-lag / --seasons-back)."""
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
    if initial_manifest is not None:
        from training.own_data import architecture_of

        model = architecture_of(initial_manifest)
        if args.seasonal_lag or args.seasons_back is not None or args.history:
            model = replace(model, seasonal_lag=True, seasons_back=args.seasons_back or model.seasons_back)
        if args.history:
            model = replace(model, history=args.history)
        return replace(config, model=model)
    model_overrides = {
        "units": args.units,
        "encoder_depth": args.depth,
        "decoder_depth": args.depth,
        "decoder_state": args.decoder_state,
        "max_context": args.context,
        "residual_head": args.residual_head or None,
        "seasonal_lag": (args.seasonal_lag or args.seasons_back is not None or args.history) or None,
        "seasons_back": args.seasons_back,
        "history": args.history,
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
        max_observed=config.model.reads,
        weights=tuple(weights.items()),
        integer_periods=args.integer_periods or 0.0,
        context=config.model.max_context if config.model.reads > config.model.max_context else 0,
    )


def run_train(args: argparse.Namespace) -> dict:
    from training.calibrate import calibrate_or_log
    from training.command import recorded_command
    from training.publish import train_and_publish

    initial = None
    if args.init_from is not None:
        from training.loading import load_model

        initial = load_model(args.store, *init_reference(args.init_from, args.name))
    config = train_config(args, initial.manifest if initial else None)
    source = training_source(args, config)
    return train_and_publish(
        args.store,
        args.name,
        config,
        command=recorded_command(args.argv, args.store),
        calibrate=calibrate_or_log,
        source=source,
        initial=initial,
        eval_waves=args.eval_waves,
    )


def run_evaluate(args: argparse.Namespace) -> dict:
    from training.loading import load_model

    loaded = load_model(args.store, args.name, args.version)
    started = time.monotonic()
    if args.real:
        from training.real_series import CHECK_SERIES, SERIES, evaluate_version

        report = evaluate_version(loaded, SERIES + CHECK_SERIES if args.check_series else SERIES)
    elif args.data:
        from training.own_data import evaluate_stored

        report = evaluate_stored(args.store, loaded, args.data, split_overrides(args))
    else:
        from training.evaluate import evaluate_version

        report = evaluate_version(loaded, args.waves)
    return {"name": loaded.name, "version": loaded.version, "seconds": round(time.monotonic() - started, 1), **report}


def evaluation_table(args: argparse.Namespace, report: dict) -> str:
    """`evaluate --markdown`: the table of the report's kind."""
    from training.report import data_table, real_table, sine_table

    if args.real:
        return real_table(report, f"{report['name']}/{report['version']}")
    return data_table(report) if args.data else sine_table(report)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    args.argv = argv
    from model_store import StoreError
    from training.calibration import CalibrationError
    from training.datafiles import DataFileError
    from training.export import ExportError

    try:
        if args.command == "train":
            answer = run_train(args)
        elif args.command == "evaluate":
            answer = run_evaluate(args)
        elif args.command == "calibrate":
            from training.calibrate import recalibrate
            from training.command import recorded_command

            command = recorded_command(args.argv, args.store)
            answer = recalibrate(args.store, args.name, args.version, args.waves, args.eval_waves, command)
        else:
            from training.export import export_version

            answer = export_version(args.store, args.name, args.version, args.out)
    except (CalibrationError, DataFileError, ExportError, StoreError) as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    markdown = args.command == "evaluate" and args.markdown
    print(evaluation_table(args, answer) if markdown else json.dumps(answer, indent=2))
    return 0
