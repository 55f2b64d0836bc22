"""An output table written in pieces and published whole: Parquet or CSV (by the suffix), into a temporary file
beside the output, renamed over it at the end; discarded (removed) on any failure, so a reader never sees half a
file."""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
    """Arrow tables, appended in order, as one Parquet or CSV file at `path` once `commit` is called."""

    def __init__(self, path: Path):
        self.path = check_output(Path(path))
        self.temporary = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        self.csv = self.path.suffix.lower() == ".csv"
        self._handle = None
        self._writer = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        """Append rows; the first table fixes the schema (later ones are cast to it)."""
        if self.schema is None:
            self.schema = table.schema
            if self.csv:
                self._handle = self.temporary.open("w", newline="", encoding="utf-8")
                self._writer = csv.writer(self._handle)
                self._writer.writerow(self.schema.names)
            else:
                strings = [f.name for f in self.schema if pa.types.is_string(f.type)]  # not the numbers: faster
                self._writer = pq.ParquetWriter(self.temporary, self.schema, use_dictionary=strings)
        table = table.cast(self.schema)
        if self.csv:
            columns = [_csv_cells(column) for column in table.columns]
            self._writer.writerows(zip(*columns, strict=True))
        else:
            self._writer.write_table(table)

    def commit(self, empty: pa.Schema) -> None:
        """Publish the file (with `empty`'s columns and no row when nothing was written)."""
        if self.schema is None:
            self.write(empty.empty_table())
        self._close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Remove the temporary file (after a failure or a signal)."""
        with contextlib.suppress(Exception):
            self._close()
        self.temporary.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        elif self._writer is not None:
            self._writer.close()
        self._handle = self._writer = None


def _csv_cells(column: pa.ChunkedArray) -> list:
    """A column's cells as CSV text: floats to 8 significant digits (the model computes in float32), nulls and
    NaN as empty cells."""
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        return ["" if np.isnan(value) else f"{value:.8g}" for value in values.tolist()]  # float32's precision
    return ["" if value is None else value for value in column.to_pylist()]
