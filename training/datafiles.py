"""Reading a user's recorded series: CSV and Parquet (wide or long), NumPy .npy/.npz, streamed in chunks.

Shapes:
- wide: one column per series, rows are consecutive steps, oldest first; a time column (named `ds`, `date`,
  `time`, `timestamp` or `datetime`, or a first column whose first cell is a time stamp) gives every series its
  time stamps. Each series runs from its first to its last value, so columns of different lengths are fine.
- long: columns `unique_id`, `ds`, `y` (the Nixtla/statsforecast convention), sorted by `ds` within a series.
- NumPy: a 1-D array is one series, a 2-D array is steps x series; every array of an .npz is read.

`series_chunks` streams a file's series in chunks of about CHUNK_VALUES values, so a file larger than memory is
read piece by piece: a long file is read twice (first only its `unique_id` column, to know where each series
ends), and a series leaves as soon as its last row is read (rows grouped by series hold one series at a time;
interleaved series are held until their last rows); a wide Parquet file or a `.npy` is read a group of columns at
a time; a wide CSV file (every row holds every series) is held as numbers, 8 bytes a value.

Gaps (empty cells, `nan`, `NA`, Parquet nulls, NaN) stay NaN here. Time stamps (`Series.stamps`) are integers
(int64) or times (datetime64[ms]); None when the file has none or they are neither. Errors name the file and,
where there is one, the line (1 = the header line) and column.
"""

from __future__ import annotations

import contextlib
import csv
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from model_store import sha256_of
from training.time_column import TIME_COLUMNS, is_number_text, time_column, time_stamps

LONG_COLUMNS = ("unique_id", "ds", "y")
GAP_CELLS = {"", "nan", "na"}
CHUNK_VALUES = 1 << 22  # values per chunk of series (32 MiB as float64)


class DataFileError(ValueError):
    """A data file that cannot be read, or whose content cannot be trained on."""


@dataclass(frozen=True)
class Series:
    """One recorded series: `values` (float64, NaN for gaps), named `<file>:<column or id or array>`, and its
    time stamps (int64 or datetime64[ms], one per value; None: none in the file)."""

    name: str
    values: np.ndarray
    stamps: np.ndarray | None = None


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
    """Read one file whole and check every series' length."""
    stream = series_chunks(path)
    series = [item for chunk in stream.chunks for item in chunk]
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
    return DataFile(path, path.stat().st_size, sha256_of(path), stream.layout, series)


@dataclass
class SeriesStream:
    """A file's layout ("wide", "long" or "array"), its series in chunks, and how many series it holds once that
    is known (at once for wide files and arrays, after the first pass for long files)."""

    layout: str
    chunks: Iterator[list[Series]]
    count: int | None = None


def series_chunks(path: Path, chunk_values: int = CHUNK_VALUES) -> SeriesStream:
    """A file's series in chunks of about `chunk_values` values (see the module docstring), read by its suffix
    (.csv, .parquet, .npy, .npz). DataFileError names what is wrong: at once for the file's type and header,
    while iterating for its content."""
    path = Path(path)
    readers = {".csv": _read_csv, ".parquet": _read_parquet, ".npy": _read_numpy, ".npz": _read_numpy}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataFileError(f"{path}: unknown file type {path.suffix!r} (use .csv, .parquet, .npy or .npz)")
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    stream = SeriesStream("", iter(()))
    stream.layout, stream.chunks = reader(path, max(1, chunk_values), stream)
    return stream


def _label(path: Path, key: str) -> str:
    return f"{path.name}:{key}"


def _trimmed(name: str, values: np.ndarray, stamps: np.ndarray | None) -> Series:
    """A wide column from its first to its last value (leading and trailing gaps are not part of the series)."""
    present = np.flatnonzero(~np.isnan(values))
    if len(present):
        keep = slice(present[0], present[-1] + 1)
        values, stamps = values[keep], None if stamps is None else stamps[keep]
    return Series(name, values, stamps)


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


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of every non-blank CSV line; DataFileError for an unreadable file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield reader.line_num, row
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(f"{path}: not a readable CSV file: {error}") from None


def _csv_header(path: Path) -> tuple[int, list[str]]:
    rows = _csv_rows(path)
    first = next(rows, None)
    rows.close()
    if first is None:
        raise DataFileError(f"{path}: is empty")
    first_line, cells = first
    header = [cell.strip() for cell in cells]
    if all(is_number_text(cell) for cell in header if cell):
        raise DataFileError(
            f"{path}: line {first_line} is not a header row ({','.join(cells)[:60]!r}): the first line must name "
            f"the columns, e.g. one name per series (wide) or unique_id,ds,y (long)"
        )
    for index, name in enumerate(header, start=1):
        if not name:
            raise DataFileError(f"{path}: line {first_line}, column {index}: empty column name")
    return first_line, header


def _csv_body(path: Path, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    rows = _csv_rows(path)
    next(rows)
    for line, row in rows:
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")
        yield line, row


def _read_csv(path: Path, chunk_values: int, stream: SeriesStream) -> tuple[str, Iterator[list[Series]]]:
    _, header = _csv_header(path)
    if "unique_id" in header:
        _check_long_header(path, header)
        return "long", _csv_long(path, header, chunk_values, stream)
    return "wide", _csv_wide(path, header, chunk_values, stream)


def _csv_wide(path: Path, header: list[str], chunk_values: int, stream: SeriesStream) -> Iterator[list[Series]]:
    body = _csv_body(path, header)
    first = next(body, None)
    if first is None:
        return
    time = time_column(header, first[1])
    stream.count = len(header) - (time is not None)
    columns = [array("d") for _ in header]
    cells: list[str] = []
    for line, row in chain([first], body):
        for column, cell in enumerate(row):
            if column == time:
                cells.append(cell)
            else:
                columns[column].append(_cell_value(path, line, column + 1, header[column], cell))
    stamps = time_stamps(cells) if time is not None else None
    chunk: list[Series] = []
    for column, name in enumerate(header):
        if column != time:
            chunk.append(_trimmed(_label(path, name), np.frombuffer(columns[column], np.float64), stamps))
            columns[column] = array("d")
            if sum(len(s.values) for s in chunk) >= chunk_values:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


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


class _LongSeries:
    """The rows of one long-form series read so far."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.stamps: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []

    def add(self, values: np.ndarray, stamps: np.ndarray, lines: np.ndarray) -> None:
        self.values.append(values)
        self.stamps.append(stamps)
        self.lines.append(lines)

    def series(self, path: Path, key: str) -> Series:
        """The finished series; DataFileError (naming both lines) where its ds does not increase."""
        values, cells, lines = (np.concatenate(parts) for parts in (self.values, self.stamps, self.lines))
        stamps = time_stamps(cells)
        order = stamps if stamps is not None else np.array([str(cell) for cell in cells.tolist()])
        if len(order) > 1:
            wrong = np.flatnonzero(~(order[1:] > order[:-1]))
            if len(wrong):
                before, row = int(wrong[0]), int(wrong[0]) + 1
                raise DataFileError(
                    f"{path}: line {lines[row]}: ds {cells[row]!r} of series {key!r} does not come after "
                    f"{cells[before]!r} (line {lines[before]}): sort the rows by ds within each series"
                )
        return Series(_label(path, key), values, stamps)


def _runs(ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Runs of equal ids in a batch (a list or an Arrow array): their starts, their ends and their ids as text,
    found by Arrow (a file grouped by series has about one run per series, not one per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(ids) if isinstance(ids, list) else ids
    ids = ids.cast(pa.string())
    if not len(ids):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), []
    change = pc.fill_null(pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)), True)
    starts = np.concatenate([[0], np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1])
    ends = np.append(starts[1:], len(ids))
    return starts, ends, [str(key) for key in ids.take(pa.array(starts)).to_pylist()]


def _last_lines(batches: Iterator[tuple[object, int]]) -> dict[str, int]:
    """{id: the line of its last row} from batches of ids and the line of their first row."""
    last_line: dict[str, int] = {}
    for ids, first in batches:
        _, ends, keys = _runs(ids)
        last_line.update(zip(keys, (first + ends - 1).tolist(), strict=True))
    return last_line


def _whole_runs(cells: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray | None, list[bool]]:
    """The stamps of a batch's ds cells read at once, and for each run (rows of one series) whether they are
    that run's own stamps (`_LongSeries.series` would read the same from its cells alone) and increase.

    Only cells that are numbers or times already, and text where every cell of the batch is a whole number,
    qualify: text that parses as times is read series by series (a series of whole numbers among them is read as
    numbers)."""
    stamps = None
    if np.issubdtype(cells.dtype, np.number) or np.issubdtype(cells.dtype, np.datetime64):
        stamps = time_stamps(cells)
    else:
        with contextlib.suppress(TypeError, ValueError):
            stamps = time_stamps(np.array([float(cell) for cell in cells.tolist()], np.float64))
    if stamps is None or not len(stamps):
        return None, [False] * len(starts)
    fine = np.ones(len(starts), bool)
    wrong = np.flatnonzero(~(stamps[1:] > stamps[:-1]))  # between rows wrong and wrong + 1
    run = np.searchsorted(starts, wrong, side="right") - 1
    fine[run[wrong + 1 < ends[run]]] = False
    return stamps, fine.tolist()


def _long_series(
    path: Path,
    batches: Iterator[tuple[object, np.ndarray, np.ndarray, np.ndarray]],
    last_line: dict[str, int],
    chunk_values: int,
) -> Iterator[list[Series]]:
    """Group long-form rows (batches of ids, ds cells, values and lines) by unique_id; a series is finished at
    its last line (`last_line`, from a first pass), then yielded in chunks."""
    open_series: dict[str, _LongSeries] = {}
    chunk: list[Series] = []
    size = 0
    for ids, cells, values, lines in batches:
        starts, ends, keys = _runs(ids)
        whole = _whole_runs(cells, starts, ends)
        for start, end, key, fast in zip(starts.tolist(), ends.tolist(), keys, whole[1], strict=True):
            if fast and key not in open_series and lines[end - 1] == last_line[key]:  # all its rows, in order
                chunk.append(Series(_label(path, key), values[start:end], whole[0][start:end]))
                size += end - start
                if size >= chunk_values:
                    yield chunk
                    chunk, size = [], 0
                continue
            rows = open_series.setdefault(key, _LongSeries())
            rows.add(values[start:end], cells[start:end], lines[start:end])
            if lines[end - 1] == last_line[key]:
                chunk.append(open_series.pop(key).series(path, key))
                size += len(chunk[-1].values)
                if size >= chunk_values:
                    yield chunk
                    chunk, size = [], 0
    if chunk:
        yield chunk


def _csv_long(path: Path, header: list[str], chunk_values: int, stream: SeriesStream) -> Iterator[list[Series]]:
    id_column, ds_column, y_column = (header.index(name) for name in LONG_COLUMNS)
    last_line = {row[id_column].strip(): line for line, row in _csv_body(path, header)}
    stream.count = len(last_line)

    def batches():
        rows = _csv_body(path, header)
        while True:
            block = [next(rows, None) for _ in range(65536)]
            block = [item for item in block if item is not None]
            if not block:
                return
            ids = [row[id_column].strip() for _, row in block]
            cells = np.array([row[ds_column].strip() for _, row in block], object)
            values = np.array([_cell_value(path, line, y_column + 1, "y", row[y_column]) for line, row in block])
            yield ids, cells, values, np.array([line for line, _ in block])

    yield from _long_series(path, batches(), last_line, chunk_values)


def _parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DataFileError(f"{path}: unreadable Parquet file: {error}") from None


def _numbers(path: Path, name: str, column) -> np.ndarray:
    """A Parquet column as float64 (nulls become NaN); DataFileError for text or infinite values."""
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataFileError(f"{path}: column {name!r} holds {column.type}, not numbers")
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return values


def _read_parquet(path: Path, chunk_values: int, stream: SeriesStream) -> tuple[str, Iterator[list[Series]]]:
    parquet = _parquet_file(path)
    names = parquet.schema_arrow.names
    if "unique_id" in names:
        _check_long_header(path, names)
        return "long", _parquet_long(path, chunk_values, stream)
    return "wide", _parquet_wide(path, names, chunk_values, stream)


def _parquet_batches(path: Path, columns: list[str]):
    import pyarrow as pa

    try:
        yield from _parquet_file(path).iter_batches(batch_size=65536, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise DataFileError(f"{path}: unreadable Parquet file: {error}") from None


def _parquet_long(path: Path, chunk_values: int, stream: SeriesStream) -> Iterator[list[Series]]:
    def id_batches():
        first = 1
        for batch in _parquet_batches(path, ["unique_id"]):
            yield batch.column(0), first
            first += batch.num_rows

    last_line = _last_lines(id_batches())
    stream.count = len(last_line)

    def batches():
        first = 1
        for batch in _parquet_batches(path, list(LONG_COLUMNS)):
            ids = batch.column("unique_id")
            values = _numbers(path, "y", batch.column("y"))
            if np.isinf(values).any():
                raise DataFileError(
                    f"{path}: row {first + int(np.flatnonzero(np.isinf(values))[0])}, column 'y': infinite value"
                )
            cells = batch.column("ds").to_numpy(zero_copy_only=False)
            yield ids, cells, values, np.arange(first, first + len(ids))
            first += len(ids)

    yield from _long_series(path, batches(), last_line, chunk_values)


def _parquet_wide(path: Path, names: list[str], chunk_values: int, stream: SeriesStream) -> Iterator[list[Series]]:
    import pyarrow as pa

    parquet = _parquet_file(path)
    rows = max(1, parquet.metadata.num_rows)
    time = None
    for index, name in enumerate(names):
        column_type = parquet.schema_arrow.field(name).type
        if name.lower() in TIME_COLUMNS or (
            index == 0 and (pa.types.is_timestamp(column_type) or pa.types.is_date(column_type))
        ):
            time = index
            break
    stamps = None
    if time is not None:
        stamps = time_stamps(parquet.read(columns=[names[time]]).column(0).to_numpy(zero_copy_only=False))
    series_names = [name for index, name in enumerate(names) if index != time]
    stream.count = len(series_names)
    group = max(1, chunk_values // rows)
    for start in range(0, len(series_names), group):
        chosen = series_names[start : start + group]
        try:
            table = parquet.read(columns=chosen)
        except (pa.ArrowException, OSError) as error:
            raise DataFileError(f"{path}: unreadable Parquet file: {error}") from None
        chunk = []
        for name in chosen:
            values = _numbers(path, name, table.column(name))
            if np.isinf(values).any():
                row = int(np.flatnonzero(np.isinf(values))[0])
                raise DataFileError(f"{path}: row {row + 1}, column {name!r}: infinite value")
            chunk.append(_trimmed(_label(path, name), values, stamps))
        yield chunk


def _read_numpy(path: Path, chunk_values: int, stream: SeriesStream) -> tuple[str, Iterator[list[Series]]]:
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix.lower() == ".npy" else None)
    except (ValueError, OSError, EOFError) as error:
        raise DataFileError(f"{path}: unreadable NumPy file: {error}") from None
    if isinstance(loaded, np.ndarray):
        arrays = {"": loaded}
    else:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    for key, values in arrays.items():
        label = f"array {key!r}" if key else "the array"
        if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
            raise DataFileError(f"{path}: {label} holds {values.dtype}, not numbers")
        if values.ndim not in (1, 2):
            raise DataFileError(f"{path}: {label} has shape {values.shape}: expected 1-D, or 2-D steps x series")
    stream.count = sum(int(np.prod(values.shape[1:])) for values in arrays.values())
    return "array", _numpy_series(path, arrays, chunk_values)


def _numpy_series(path: Path, arrays: dict[str, np.ndarray], chunk_values: int) -> Iterator[list[Series]]:
    for key, stored in arrays.items():
        label = f"array {key!r}" if key else "the array"
        table = stored.reshape(len(stored), -1)
        group = max(1, chunk_values // max(1, len(table)))
        for start in range(0, table.shape[1], group):
            values = np.asarray(table[:, start : start + group], np.float64)
            if np.isinf(values).any():
                row, column = np.argwhere(np.isinf(values))[0]
                raise DataFileError(f"{path}: {label}, row {row}, column {start + column}: infinite value")
            chunk = []
            for column in range(values.shape[1]):
                index = start + column
                name = (key if stored.ndim == 1 else f"{key}[{index}]") if key else str(index)
                chunk.append(_trimmed(_label(path, name), values[:, column].copy(), None))
            yield chunk
