"""Evaluation reports as Markdown tables (what the README shows): one table writer, one layout per report."""

from __future__ import annotations

from training.coverage import coverage_cell


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: a header row, the separator, then one line per row (an empty cell stays empty)."""
    line = lambda cells: "|" + "".join(f" {cell} |" if cell else " |" for cell in cells)  # noqa: E731
    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def sine_table(report: dict) -> str:
    """The sine test sets (`training.evaluate.evaluate`): per variant the model's MAE / amplitude beside the target
    and the baselines; then, for a calibrated model, its bands."""
    rows = []
    for name, variant in report["variants"].items():
        model, baselines, buckets = variant["model"], variant["baselines"], variant["model"]["per_horizon"]
        mark = "" if variant["meets_target"] else " (missed)"
        rows.append(
            [
                f"{name}: {variant['description']}",
                f"**{model['mae']:.3f}**{mark}",
                f"≤ {variant['target']}",
                f"{baselines['window_mean']:.3f}",
                f"{baselines['persistence']:.3f}",
                f"{baselines['sine_fit']:.3f}",
                f"{buckets['1-10']:.3f} / {buckets['101-150']:.3f}",
            ]
        )
    header = ["test waves", "model", "target", "window mean", "persistence", "sine fit", "model, steps 1-10 / 101-150"]
    table = markdown_table(header, rows)
    intervals = {name: v["intervals"] for name, v in report["variants"].items() if "intervals" in v}
    return f"{table}\n\n{interval_table(intervals)}" if intervals else table


def interval_table(intervals: dict[str, dict]) -> str:
    """One row per variant and level: coverage overall and per horizon bucket, mean width."""
    rows = [
        [
            name,
            f"{level} %",
            f"**{100 * v['coverage']:.1f} %**",
            " / ".join(f"{100 * c:.1f}" for c in v["per_horizon"].values()),
            f"{v['width']:.3f}",
            f"{v['width_over_mae']:.2f}",
        ]
        for name, levels in intervals.items()
        for level, v in levels.items()
    ]
    header = ["test waves", "level", "coverage", "steps 1-10 / 11-50 / 51-100 / 101-150", "width / amplitude"]
    return markdown_table([*header, "width / MAE"], rows)


def data_table(report: dict) -> str:
    """The data files' test parts (`training.data_evaluation.evaluate_on_data`): per series and overall, MAE / MAE
    of seasonal naive for each forecaster."""
    columns = [name for name in ("model", "initial_model") if name in report["overall"]]
    bands = "mean_coverage" in report
    titles = {"model": "model", "initial_model": "model it started from"}
    header = ["series", "period", "test windows", *(titles[c] for c in columns), "window mean", "persistence"]
    header += ["seasonal naive MAE", *(["80 % / 95 % band coverage"] if bands else [])]
    rows = []
    for name, entry in report["series"].items():
        if "relative" not in entry:
            continue
        relative = entry["relative"]
        cells = [f"{relative[c]:.3f}" for c in [*columns, "window_mean", "persistence"]]
        rows.append(
            [name, str(entry["period"]), str(entry["windows"]), *cells, f"{entry['mae']['seasonal_naive']:.4g}"]
            + ([coverage_cell(entry["intervals"])] if bands else [])
        )
    overall = report["overall"]
    cells = [f"**{overall[c]:.3f}**" for c in [*columns, "window_mean", "persistence"]]
    rows.append(
        ["overall (geometric mean)", "", str(report["windows"]), *cells, ""]
        + ([f"mean {coverage_cell(report['mean_coverage'])}"] if bands else [])
    )
    return markdown_table(header, rows)


def real_table(report: dict, label: str = "model") -> str:
    """The real recorded series (`training.real_series.evaluate_real`): relative MAE per series (below 1 beats
    seasonal naive) and their geometric mean."""
    bands = "mean_coverage" in report
    header = ["series", "domain", "period", "windows x observed", label, "window mean", "persistence"]
    header += ["80 % / 95 % band coverage", "80 % band width / MAE"] if bands else []
    rows = []
    for name, e in report["series"].items():
        mark = " (held aside)" if e["held_aside"] else " (check)" if e.get("check") else ""
        r = e["relative_mae"]
        rows.append(
            [f"{name}{mark}", e["domain"], str(e["period"]), f"{e['windows']} x {e['observed_steps']}"]
            + [f"**{r['model']:.3f}**", f"{r['window_mean']:.3f}", f"{r['persistence']:.3f}"]
            + ([coverage_cell(e["intervals"]), f"{e['intervals']['80']['width_over_mae']:.1f}"] if bands else [])
        )
    g = report["geometric_mean"]
    rows.append(
        ["geometric mean", "", "", "", f"**{g['model']:.3f}**", f"{g['window_mean']:.3f}", f"{g['persistence']:.3f}"]
        + ([f"mean {coverage_cell(report['mean_coverage'])}", ""] if bands else [])
    )
    return markdown_table(header, rows)
