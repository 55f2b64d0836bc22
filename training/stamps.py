"""Continuing a series' time stamps past its end: integers by their step, times at their inferred frequency.

Frequencies inferred from the stamps alone (numpy only): a fixed step (seconds, minutes, hours, days, weeks: every
difference equal), or a fixed number of calendar months (monthly, quarterly, yearly) on the same day and time of
the month, or on the last day of each month. Anything else (irregular stamps, one stamp) has no frequency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

UNIT = "datetime64[ms]"


@dataclass(frozen=True)
class Continuation:
    """The next `horizon` stamps of a series; where its frequency cannot be inferred, step numbers instead and
    `reason` says why."""

    stamps: np.ndarray
    frequency: str
    reason: str = ""


def continue_stamps(stamps: np.ndarray | None, steps: int, horizon: int) -> Continuation:
    """The `horizon` stamps after `stamps` (int64 or datetime64) of a series of `steps` steps; without stamps, or
    times without a frequency, step numbers `steps`, `steps + 1`, ..."""
    numbers = np.arange(steps, steps + horizon, dtype=np.int64)
    if stamps is None:
        return Continuation(numbers, "step")
    ahead = np.arange(1, horizon + 1)
    if np.issubdtype(stamps.dtype, np.integer):
        differences = np.unique(np.diff(stamps))
        step = int(differences[0]) if len(differences) == 1 else 1
        return Continuation(stamps[-1] + step * ahead, "step" if step == 1 else f"{step} steps")
    times = stamps.astype(UNIT)
    if len(times) < 2:
        return Continuation(numbers, "", "one time stamp: no frequency")
    differences = np.unique(np.diff(times))
    if len(differences) == 1 and differences[0] > np.timedelta64(0, "ms"):
        return Continuation(times[-1] + differences[0] * ahead, _named(differences[0]))
    months = times.astype("datetime64[M]")
    within = times - months.astype(UNIT)  # time since the start of each one's month
    month_steps = np.unique(np.diff(months.astype(np.int64)))
    if len(month_steps) == 1 and month_steps[0] > 0:
        step = int(month_steps[0])
        future_months = months[-1] + step * ahead
        name = {1: "monthly", 3: "quarterly", 12: "yearly"}.get(step, f"every {step} months")
        if len(np.unique(within)) == 1:
            return Continuation(future_months.astype(UNIT) + within[0], name)
        month_end = times.astype("datetime64[D]") + 1 == (months + 1).astype("datetime64[D]")
        time_of_day = times - times.astype("datetime64[D]").astype(UNIT)
        if month_end.all() and len(np.unique(time_of_day)) == 1:
            ends = (future_months + 1).astype("datetime64[D]") - 1
            return Continuation(ends.astype(UNIT) + time_of_day[0], f"{name}, month end")
    return Continuation(numbers, "", "irregular time stamps: no frequency")


def stamp_problem(stamps: np.ndarray, name: Callable[[int], str] = "row {}".format) -> tuple[int, str] | None:
    """The first row (from 0) whose stamp does not continue the ones before it, and why (rows named by `name`):
    it repeats the one before, comes before it, or breaks the regular steps of the rows before it (the longest
    run from the first row that has a frequency by `continue_stamps`'s rules, or one integer step). None when
    every stamp continues the ones before it."""
    if len(stamps) < 2:
        return None
    differences = np.diff(stamps)
    zero = differences.dtype.type(0)
    wrong = np.flatnonzero(differences <= zero)
    if len(wrong):
        row = int(wrong[0]) + 1
        return row, f"repeats {name(row - 1)}" if differences[row - 1] == zero else f"is not after {name(row - 1)}"
    if np.issubdtype(stamps.dtype, np.integer):
        regular = int(np.argmax(np.append(differences != differences[0], True))) + 1  # stamps[:regular] are regular
    else:
        regular, irregular = 2, len(stamps) + 1  # two stamps are regular; find the longest regular run by halving
        while irregular - regular > 1:
            middle = (regular + irregular) // 2
            inferred = not continue_stamps(stamps[:middle], middle, 1).reason
            regular, irregular = (middle, irregular) if inferred else (regular, middle)
    if regular >= len(stamps):
        return None
    frequency = continue_stamps(stamps[:regular], regular, 1).frequency
    return regular, f"breaks the regular steps of {name(0)} to {name(regular - 1)} ({frequency}): irregular time stamps"


def continue_all(stamps: list[np.ndarray | None], steps: list[int], horizon: int) -> list[Continuation]:
    """`continue_stamps` of many series (stamps, steps and the horizon as there): integer stamps of one length at
    once (one array operation per length), the others one by one."""
    out: list[Continuation | None] = [None] * len(stamps)
    lengths: dict[int, list[int]] = {}
    for index, (own, count) in enumerate(zip(stamps, steps, strict=True)):
        if own is not None and np.issubdtype(own.dtype, np.integer) and len(own) > 1:
            lengths.setdefault(len(own), []).append(index)
        else:
            out[index] = continue_stamps(own, count, horizon)
    ahead = np.arange(1, horizon + 1)
    for indices in lengths.values():
        table = np.stack([stamps[index] for index in indices])
        differences = np.diff(table, axis=1)
        step = np.where((differences == differences[:, :1]).all(axis=1), differences[:, 0], 1)
        future = table[:, -1:] + step[:, None] * ahead
        for index, row, each in zip(indices, future, step.tolist(), strict=True):
            out[index] = Continuation(row, "step" if each == 1 else f"{each} steps")
    return out


def _named(step: np.timedelta64) -> str:
    """A fixed step's name: daily, hourly, ... or its length."""
    milliseconds = int(step.astype("timedelta64[ms]").astype(np.int64))
    names = {
        604_800_000: "weekly",
        86_400_000: "daily",
        3_600_000: "hourly",
        60_000: "every minute",
        1000: "every second",
    }
    return names.get(milliseconds, f"every {milliseconds / 1000:g} s")
