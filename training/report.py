"""An evaluation report as a Markdown table (what the README shows)."""

from __future__ import annotations


def markdown_table(report: dict) -> str:
    """One row per variant: the model's MAE / amplitude beside the target and the baselines."""
    lines = [
        "| test waves | model | target | window mean | persistence | sine fit | model, steps 1-10 / 101-150 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, variant in report["variants"].items():
        model, baselines, buckets = variant["model"], variant["baselines"], variant["model"]["per_horizon"]
        mark = "" if variant["meets_target"] else " (missed)"
        lines.append(
            f"| {name}: {variant['description']} | **{model['mae']:.3f}**{mark} | ≤ {variant['target']} "
            f"| {baselines['window_mean']:.3f} | {baselines['persistence']:.3f} | {baselines['sine_fit']:.3f} "
            f"| {buckets['1-10']:.3f} / {buckets['101-150']:.3f} |"
        )
    intervals = {name: v["intervals"] for name, v in report["variants"].items() if "intervals" in v}
    return "\n".join(lines + (["", *interval_table(intervals)] if intervals else []))


def interval_table(intervals: dict[str, dict]) -> list[str]:
    """One row per variant and level: coverage overall and per horizon bucket, mean width."""
    lines = [
        "| test waves | level | coverage | steps 1-10 / 11-50 / 51-100 / 101-150 | width / amplitude | width / MAE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, levels in intervals.items():
        for level, v in levels.items():
            buckets = " / ".join(f"{100 * c:.1f}" for c in v["per_horizon"].values())
            lines.append(
                f"| {name} | {level} % | **{100 * v['coverage']:.1f} %** | {buckets} | {v['width']:.3f} "
                f"| {v['width_over_mae']:.2f} |"
            )
    return lines
