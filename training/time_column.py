"""A table's time column: which column holds the time stamps, the stamps read from its cells, and the stamps as
text again.

The one reader of time columns, shared by the data files of `train --data`, `evaluate --data` and `wave-complete`
(training/datafiles.py) and the CSV bodies of the service (app/csv_io.py). NumPy only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

TIME_COLUMNS = ("ds", "date", "time", "timestamp", "datetime")  # names of a time column (any case)
TIME_UNIT = "datetime64[ms]"
OFFSET = re.compile(r"(?<=\d:\d\d)(?:\.\d+)?(Z|([+-])(\d\d):?(\d\d))$")  # after a time of day: Z, +02:00, -0530


class StampError(ValueError):
    """A cell of a time column that is not a time stamp; `row` is its index in the column (from 0)."""

    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row


def is_number_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def is_time_text(cell: str) -> bool:
    """True for ISO 8601 text (`2026-01-01`, `2026-01-01 08:30`, `2026-01-01T08:30:00`), not for a number."""
    try:
        stamp = np.datetime64(utc_texts([cell.strip()])[0][0], "ms")
    except ValueError:
        return False
    return not np.isnat(stamp) and not is_number_text(cell)


def utc_texts(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The texts without a UTC offset (`Z`, `+02:00`), and the offsets to subtract (timedelta64[m]): numpy reads
    offsets only with a warning."""
    bare, minutes = [], []
    for text in texts:
        found = OFFSET.search(text)
        if found is None or found.group(1) == "Z":
            bare.append(text if found is None else text[: found.start(1)])
            minutes.append(0)
            continue
        sign = -1 if found.group(2) == "-" else 1
        bare.append(text[: found.start(1)])
        minutes.append(sign * (60 * int(found.group(3)) + int(found.group(4))))
    return bare, np.array(minutes, "timedelta64[m]")


def time_column(names: Sequence[str] | None, first_cells: Sequence | None) -> int | None:
    """The index of a table's time column: one named like TIME_COLUMNS, else a first column whose first cell
    is a time stamp; None when there is none."""
    for index, name in enumerate(names or ()):
        if name.strip().lower() in TIME_COLUMNS:
            return index
    return 0 if first_cells and is_time_text(str(first_cells[0])) else None


def parse_stamps(cells) -> np.ndarray:
    """Time stamps from a column's cells: int64 when every one is a whole number, datetime64[ms] when every one is
    a time (ISO 8601 text, or times already). StampError names the first cell that is neither (or is empty)."""
    cells = np.asarray(cells)
    if np.issubdtype(cells.dtype, np.datetime64):
        times = cells.astype(TIME_UNIT)
        _no_empty(times)
        return times
    if np.issubdtype(cells.dtype, np.number):
        numbers = cells.astype(np.float64)
    else:
        texts = [str(cell).strip() for cell in cells.tolist()]
        if not all(is_number_text(text) for text in texts):
            return _times(texts)
        numbers = np.array([float(text) for text in texts], np.float64)
    wrong = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if len(wrong):
        row = int(wrong[0])
        raise StampError(row, f"{cells.tolist()[row]!r} is neither a time stamp nor a whole step number")
    return numbers.astype(np.int64)


def _times(texts: list[str]) -> np.ndarray:
    bare, offsets = utc_texts(texts)
    try:
        times = np.array(bare, TIME_UNIT) - offsets
    except ValueError:
        for row, (text, without_offset) in enumerate(zip(texts, bare, strict=True)):
            try:
                np.datetime64(without_offset, "ms")
            except ValueError:
                raise StampError(row, f"{text!r} is not a time stamp (ISO 8601, e.g. 2026-01-31 08:00)") from None
        raise
    _no_empty(times)
    return times


def _no_empty(times: np.ndarray) -> None:
    empty = np.flatnonzero(np.isnat(times))
    if len(empty):
        raise StampError(int(empty[0]), "the time stamp is empty")


def time_stamps(cells) -> np.ndarray | None:
    """parse_stamps's stamps, or None when the cells are not all stamps."""
    try:
        return parse_stamps(cells)
    except StampError:
        return None


def stamp_texts(stamps: np.ndarray) -> list[int | str]:
    """Stamps as JSON or CSV values: integers stay integers; times become ISO 8601 text at the coarsest unit that
    holds them all (the date alone when they are all at midnight, else seconds or milliseconds); NaT is ''."""
    if np.issubdtype(stamps.dtype, np.integer):
        return stamps.tolist()
    times = stamps.astype(TIME_UNIT)
    valid = ~np.isnat(times)
    whole = times[valid]
    unit = "D" if (whole == whole.astype("datetime64[D]")).all() else "s"
    if unit == "s" and not (whole == whole.astype("datetime64[s]")).all():
        unit = "ms"
    texts = np.datetime_as_string(times, unit).tolist()
    return [text if ok else "" for text, ok in zip(texts, valid.tolist(), strict=True)]
