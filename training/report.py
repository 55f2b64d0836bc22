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
    return "\n".join(lines)
