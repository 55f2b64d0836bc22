"""An output table written in pieces and published whole: Parquet or CSV (by the suffix), into a temporary file
beside the output, renamed over it at the end; discarded (removed) on any failure, so a reader never sees half a
file.

Time-stamp columns (`ds`, `cutoff`) may hold integers, times, or text where a piece mixes both (a series without
a frequency continues with step numbers among series of times). CSV writes them as text. Parquet keeps the type of
the first piece; a later piece of another kind is kept aside as text (a spill file beside the output) and, at the
end, the file is rewritten once with those columns as text, so no cell is lost and memory stays bounded.
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.time_column import stamp_texts

SUFFIXES = (".parquet", ".csv")


class OutputError(ValueError):
    """The output cannot be written there (its suffix, or its folder)."""


def check_output(path: Path) -> Path:
    """`path` if an output can be written there: a .parquet or .csv name in an existing folder."""
    if path.suffix.lower() not in SUFFIXES:
        raise OutputError(f"{path}: the output's suffix says its format: .parquet or .csv, not {path.suffix!r}")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: no folder {path.parent}")
    return path


class TableWriter:
    """Arrow tables, appended in order, as one Parquet or CSV file at `path` once `commit` is called. Stamp
    columns (`stamps`) come in groups of `group` rows (one series' horizon), each written at its own resolution."""

    def __init__(self, path: Path, stamps: tuple[str, ...] = ("ds", "cutoff"), group: int = 1):
        self.path = check_output(Path(path))
        self.temporary = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        self.spill = self.path.parent / f".{self.path.name}.spill-{os.getpid()}"
        self.csv = self.path.suffix.lower() == ".csv"
        self.stamps = stamps
        self.group = group
        self._handle = None
        self._writer = None
        self._spill_writer = None
        self._spilled: list[tuple[int, int]] = []  # row ranges whose stamps are in the spill file, in order
        self._rows = 0
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        """Append rows; the first table fixes the schema (later ones are cast to it, their stamps as above)."""
        stamps = [name for name in self.stamps if name in table.column_names]
        if self.csv:
            table = _with_text(table, stamps, self._rows, self.group)
        if self.schema is None:
            self.schema = table.schema
            if self.csv:
                self._handle = self.temporary.open("w", newline="", encoding="utf-8")
                self._writer = csv.writer(self._handle)
                self._writer.writerow(self.schema.names)
            else:
                self._writer = pq.ParquetWriter(self.temporary, self.schema, use_dictionary=_strings(self.schema))
        if not self.csv:
            table = self._fit_stamps(table, stamps)
        table = table.cast(self.schema)
        if self.csv:
            columns = [_csv_cells(column) for column in table.columns]
            self._writer.writerows(zip(*columns, strict=True))
        else:
            self._writer.write_table(table)
        self._rows += table.num_rows

    def _fit_stamps(self, table: pa.Table, stamps: list[str]) -> pa.Table:
        """`table` with its stamp columns in the file's types: as text if the file's are text; else, where a column
        is of another kind, its text goes to the spill file and its cells stay empty until `commit`."""
        if all(table.schema.field(name).type == self.schema.field(name).type for name in stamps):
            return table
        if all(pa.types.is_string(self.schema.field(name).type) for name in stamps):
            return _with_text(table, stamps, self._rows, self.group)
        texts = _with_text(table.select(stamps), stamps, self._rows, self.group)
        if self._spill_writer is None:
            self._spill_writer = pa.ipc.new_stream(pa.OSFile(str(self.spill), "wb"), texts.schema)
        self._spill_writer.write_table(texts)
        self._spilled.append((self._rows, self._rows + table.num_rows))
        for name in stamps:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.nulls(table.num_rows, self.schema.field(name).type))
        return table

    def commit(self, empty: pa.Schema) -> None:
        """Publish the file (with `empty`'s columns and no row when nothing was written)."""
        if self.schema is None:
            self.write(empty.empty_table())
        self._close()
        if self._spilled:
            self._rewrite_with_text_stamps()
        os.replace(self.temporary, self.path)

    def _rewrite_with_text_stamps(self) -> None:
        """The written file again, its stamp columns as text (spilled pieces from the spill file), row group by row
        group into a second temporary file that takes the first one's place."""
        stamps = [name for name in self.stamps if name in self.schema.names]
        schema = pa.schema([pa.field(f.name, pa.string()) if f.name in stamps else f for f in self.schema])
        rewritten = self.temporary.with_name(self.temporary.name + ".text")
        spilled = _spilled_batches(self.spill, self._spilled)
        pending = next(spilled, None)
        try:
            with (
                pq.ParquetFile(self.temporary) as source,
                pq.ParquetWriter(rewritten, schema, use_dictionary=_strings(schema)) as target,
            ):
                start = 0
                for index in range(source.num_row_groups):
                    table = _with_text(source.read_row_group(index), stamps, start, self.group)
                    stop = start + table.num_rows
                    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in stamps}
                    while pending is not None and pending[0] < stop:
                        first, last, texts = pending
                        low, high = max(first, start), min(last, stop)
                        for name in stamps:
                            columns[name][low - start : high - start] = texts[name][low - first : high - first]
                        if last > stop:
                            break
                        pending = next(spilled, None)
                    for name in stamps:
                        table = table.set_column(
                            table.schema.get_field_index(name), name, pa.array(columns[name], pa.string())
                        )
                    target.write_table(table.cast(schema))
                    start = stop
            os.replace(rewritten, self.temporary)
        finally:
            rewritten.unlink(missing_ok=True)
            self.spill.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the temporary files (after a failure or a signal)."""
        with contextlib.suppress(Exception):
            self._close()
        self.temporary.unlink(missing_ok=True)
        self.spill.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        elif self._writer is not None:
            self._writer.close()
        if self._spill_writer is not None:
            self._spill_writer.close()
        self._handle = self._writer = self._spill_writer = None


def _strings(schema: pa.Schema) -> list[str]:
    """The columns Parquet should dictionary-encode: the text ones (not the numbers: faster)."""
    return [f.name for f in schema if pa.types.is_string(f.type)]


def _with_text(table: pa.Table, names: list[str], first_row: int, group: int) -> pa.Table:
    """`table` with its columns `names` as text (`stamp_texts`: each group of `group` rows, counted from row
    `first_row` of the file, at its own resolution); text columns stay as they are, empty cells stay empty."""
    for name in names:
        column = table.column(name)
        if pa.types.is_string(column.type):
            continue
        empty = column.is_null().to_numpy(zero_copy_only=False)
        values = pc.fill_null(column, pa.scalar(0, column.type)).to_numpy(zero_copy_only=False)
        if pa.types.is_timestamp(column.type):
            values = values.astype("datetime64[ms]")
        bounds = np.arange(group - first_row % group, len(values), group) if group > 1 else np.arange(1, len(values))
        texts = [str(cell) for part in np.split(values, bounds) for cell in stamp_texts(part)]
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(texts, pa.string(), mask=empty))
    return table


def _spilled_batches(path: Path, ranges: list[tuple[int, int]]):
    """(first row, end row, {column: text array}) of each spilled piece, read one at a time."""
    with pa.ipc.open_stream(pa.OSFile(str(path), "rb")) as reader:
        for (first, last), batch in zip(ranges, reader, strict=True):
            yield first, last, {name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names}


def _csv_cells(column: pa.ChunkedArray) -> list:
    """A column's cells as CSV text: floats to 8 significant digits (the model computes in float32), nulls and
    NaN as empty cells."""
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        return ["" if np.isnan(value) else f"{value:.8g}" for value in values.tolist()]  # float32's precision
    return ["" if value is None else value for value in column.to_pylist()]
