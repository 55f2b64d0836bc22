"""Reading a user's recorded series: CSV and Parquet (wide or long), NumPy .npy/.npz.

Shapes:
- wide: one column per series, rows are consecutive steps, oldest first; a column named `ds` (time stamps) is
  skipped. Each series runs from its first to its last value, so columns of different lengths are fine.
- long: columns `unique_id`, `ds`, `y` (the Nixtla/statsforecast convention), sorted by `ds` within a series.
- NumPy: a 1-D array is one series, a 2-D array is steps x series; every array of an .npz is read.

Gaps (empty cells, `nan`, `NA`, Parquet nulls, NaN) stay NaN here; they are filled per split part (see
training/file_source.py). Errors name the file and, where there is one, the line (1 = the header line) and column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from model_store import sha256_of

LONG_COLUMNS = ("unique_id", "ds", "y")
TIME_COLUMN = "ds"
GAP_CELLS = {"", "nan", "na"}


class DataFileError(ValueError):
    """A data file that cannot be read, or whose content cannot be trained on."""


@dataclass(frozen=True)
class Series:
    """One recorded series: `values` (float64, NaN for gaps), named `<file>:<column or id or array>`."""

    name: str
    values: np.ndarray


@dataclass(frozen=True)
class DataFile:
    """A read data file: where it came from, its checksum, and its series."""

    path: Path
    size: int
    sha256: str
    layout: str
    series: list[Series]

    def describe(self) -> dict:
        """What the manifest records about the file."""
        return {
            "name": self.path.name,
            "size": self.size,
            "sha256": self.sha256,
            "layout": self.layout,
            "series": {s.name: len(s.values) for s in self.series},
        }


def read_data_files(paths: list[Path], min_length: int) -> list[DataFile]:
    """Read every file; each series must have at least `min_length` steps. Series names must be unique."""
    files = [read_data_file(Path(path), min_length) for path in paths]
    seen: set[str] = set()
    for data in files:
        for series in data.series:
            if series.name in seen:
                raise DataFileError(f"{data.path}: series {series.name!r} appears twice (the same file given twice?)")
            seen.add(series.name)
    return files


def read_data_file(path: Path, min_length: int) -> DataFile:
    """Read one file by its suffix (.csv, .parquet, .npy, .npz) and check every series' length."""
    readers = {".csv": _read_csv, ".parquet": _read_parquet, ".npy": _read_numpy, ".npz": _read_numpy}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataFileError(f"{path}: unknown file type {path.suffix!r} (use .csv, .parquet, .npy or .npz)")
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    layout, series = reader(path)
    if not series:
        raise DataFileError(f"{path}: holds no series")
    for item in series:
        if len(item.values) < min_length:
            raise DataFileError(
                f"{path}: series {item.name!r} has {len(item.values)} steps, too short for one window "
                f"({min_length} steps: the model's minimum observed steps + its horizon)"
            )
        if np.isnan(item.values).all():
            raise DataFileError(f"{path}: series {item.name!r} has no value")
    return DataFile(path, path.stat().st_size, sha256_of(path), layout, series)


def _label(path: Path, key: str) -> str:
    return f"{path.name}:{key}"


def _trimmed(values: np.ndarray) -> np.ndarray:
    """A wide column from its first to its last value (leading and trailing gaps are not part of the series)."""
    present = np.flatnonzero(~np.isnan(values))
    return values[present[0] : present[-1] + 1] if len(present) else values


def _is_number_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cell_value(path: Path, line: int, column: int, name: str, cell: str) -> float:
    text = cell.strip()
    if text.lower() in GAP_CELLS:
        return np.nan
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(f"{path}: line {line}, column {column} ({name!r}): {cell!r} is not a number") from None
    if not np.isfinite(value):
        raise DataFileError(f"{path}: line {line}, column {column} ({name!r}): {cell!r} is not a finite number")
    return value


def _read_csv(path: Path) -> tuple[str, list[Series]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(f"{path}: not a readable CSV file: {error}") from None
    if not rows:
        raise DataFileError(f"{path}: is empty")
    first_line, first = rows[0]
    header = [cell.strip() for cell in first]
    if all(_is_number_text(cell) for cell in header if cell):
        raise DataFileError(
            f"{path}: line {first_line} is not a header row ({','.join(first)[:60]!r}): the first line must name "
            f"the columns, e.g. one name per series (wide) or unique_id,ds,y (long)"
        )
    for index, name in enumerate(header, start=1):
        if not name:
            raise DataFileError(f"{path}: line {first_line}, column {index}: empty column name")
    body = rows[1:]
    for line, row in body:
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")

    def column_values(column: int) -> np.ndarray:
        name = header[column]
        return np.array([_cell_value(path, line, column + 1, name, row[column]) for line, row in body], np.float64)

    if "unique_id" in header:
        _check_long_header(path, header)
        ids = [row[header.index("unique_id")].strip() for _, row in body]
        stamps = [row[header.index("ds")].strip() for _, row in body]
        lines = [line for line, _ in body]
        return "long", _long_series(path, ids, stamps, column_values(header.index("y")), lines)
    series = []
    for column, name in enumerate(header):
        if name != TIME_COLUMN:
            series.append(Series(_label(path, name), _trimmed(column_values(column))))
    return "wide", series


def _check_long_header(path: Path, header: list[str]) -> None:
    unknown = [(i, name) for i, name in enumerate(header, start=1) if name not in LONG_COLUMNS]
    if unknown:
        names = ", ".join(f"{name!r} (column {i})" for i, name in unknown)
        raise DataFileError(f"{path}: long form (it has unique_id) takes only unique_id, ds, y; unknown: {names}")
    missing = [name for name in LONG_COLUMNS if name not in header]
    if missing:
        raise DataFileError(f"{path}: long form (it has unique_id) needs the columns {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise DataFileError(f"{path}: a column name appears twice in the header")


def _long_series(path: Path, ids: list[str], stamps: list, values: np.ndarray, lines: list[int]) -> list[Series]:
    """Group long-form rows by unique_id (in order of first appearance); check ds increases within each.

    `lines` gives each row's position for error messages (the CSV line, or the Parquet row counting from 1).
    """
    rows_of: dict[str, list[int]] = {}
    for row, key in enumerate(ids):
        rows_of.setdefault(key, []).append(row)
    numeric = all(isinstance(s, (int, float, np.integer, np.floating)) or _is_number_text(str(s)) for s in stamps)
    keys = [float(s) for s in stamps] if numeric else [str(s) for s in stamps]
    series = []
    for key, rows in rows_of.items():
        for before, row in pairwise(rows):
            if not keys[row] > keys[before]:
                raise DataFileError(
                    f"{path}: line {lines[row]}: ds {stamps[row]!r} of series {key!r} does not come after "
                    f"{stamps[before]!r} (line {lines[before]}): sort the rows by ds within each series"
                )
        series.append(Series(_label(path, key), values[rows]))
    return series


def _read_parquet(path: Path) -> tuple[str, list[Series]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DataFileError(f"{path}: unreadable Parquet file: {error}") from None
    names = table.column_names

    def numbers(name: str) -> np.ndarray:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataFileError(f"{path}: column {name!r} holds {column.type}, not numbers")
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN

    if "unique_id" in names:
        _check_long_header(path, names)
        ids = [str(v) for v in table.column("unique_id").to_pylist()]
        stamps = table.column("ds").to_pylist()
        values = numbers("y")
        if not np.isfinite(values[~np.isnan(values)]).all():
            raise DataFileError(f"{path}: column 'y' holds an infinite value")
        return "long", _long_series(path, ids, stamps, values, list(range(1, len(ids) + 1)))
    series = []
    for name in names:
        if name == TIME_COLUMN:
            continue
        values = numbers(name)
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise DataFileError(f"{path}: row {row + 1}, column {name!r}: infinite value")
        series.append(Series(_label(path, name), _trimmed(values)))
    return "wide", series


def _read_numpy(path: Path) -> tuple[str, list[Series]]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataFileError(f"{path}: unreadable NumPy file: {error}") from None
    if isinstance(loaded, np.ndarray):
        arrays = {"": loaded}
    else:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    series = []
    for key, array in arrays.items():
        label = f"array {key!r}" if key else "the array"
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise DataFileError(f"{path}: {label} holds {array.dtype}, not numbers")
        if array.ndim not in (1, 2):
            raise DataFileError(f"{path}: {label} has shape {array.shape}: expected 1-D, or 2-D steps x series")
        values = array.astype(np.float64).reshape(len(array), -1)
        if np.isinf(values).any():
            row, column = np.argwhere(np.isinf(values))[0]
            raise DataFileError(f"{path}: {label}, row {row}, column {column}: infinite value")
        for column in range(values.shape[1]):
            name = (key if array.ndim == 1 else f"{key}[{column}]") if key else str(column)
            series.append(Series(_label(path, name), _trimmed(values[:, column])))
    return "array", series
