"""The output writer: pieces whose time-stamp columns are of different kinds (times, step numbers, both) give one
file whose stamps are all there, the same in Parquet and CSV, across row groups; nothing is left beside it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.table_output import TableWriter

TIME = pa.timestamp("ms")


def times(start: str, count: int) -> pa.Array:
    return pa.array((np.datetime64(start) + np.arange(count)).astype("datetime64[ms]"), TIME)


def piece(ids: list[str], ds: pa.Array) -> pa.Table:
    return pa.table({"unique_id": ids, "ds": ds, "y_hat": np.arange(len(ids), dtype=np.float64)})


PIECES = [
    piece(["x"] * 10, times("2024-01-01", 10)),
    piece(["o"] * 5 + ["y"] * 5, pa.array(["5", "6", "7", "8", "9", *(f"2024-02-0{d}" for d in range(1, 6))])),
    piece(["z"] * 5, times("2024-03-01", 5)),
    piece(["n"] * 5, pa.array(np.arange(100, 105))),
    piece(["h"] * 5, pa.array((np.datetime64("2024-03-01T01") + np.arange(5)).astype("datetime64[ms]"), TIME)),
]
EXPECTED = (
    [f"2024-01-{d:02d}" for d in range(1, 11)]
    + ["5", "6", "7", "8", "9"]
    + [f"2024-02-0{d}" for d in range(1, 6)]
    + [f"2024-03-0{d}" for d in range(1, 6)]
    + ["100", "101", "102", "103", "104"]
    + [f"2024-03-01T0{h}:00:00" for h in range(1, 6)]
)


@pytest.mark.parametrize("row_group", [7, None])  # row groups that cut series apart, and one per piece
def test_pieces_of_mixed_stamp_kinds_give_every_stamp_as_text(tmp_path, monkeypatch, row_group):
    write_table = pq.ParquetWriter.write_table
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lambda self, t, **_: write_table(self, t, row_group))
    for name in ("out.parquet", "out.csv"):
        writer = TableWriter(tmp_path / name, group=5)
        for table in PIECES:
            writer.write(table)
        writer.commit(PIECES[0].schema)
    table = pq.read_table(tmp_path / "out.parquet")
    assert pa.types.is_string(table.schema.field("ds").type)
    assert table.column("ds").to_pylist() == EXPECTED
    assert table.column("y_hat").to_pylist() == [float(v) for t in PIECES for v in t.column("y_hat").to_pylist()]
    csv_ds = [line.split(",")[1] for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    assert csv_ds == EXPECTED
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.csv", "out.parquet"]


def test_pieces_of_one_kind_keep_their_type(tmp_path):
    writer = TableWriter(tmp_path / "out.parquet", group=5)
    writer.write(PIECES[0])
    writer.write(PIECES[2])
    writer.commit(PIECES[0].schema)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("ds").type == TIME and table.column("ds").null_count == 0


def test_a_discarded_output_leaves_neither_file_nor_spill(tmp_path):
    writer = TableWriter(tmp_path / "out.parquet", group=5)
    for table in PIECES[:2]:  # the second piece goes to the spill file
        writer.write(table)
    assert writer.spill.exists()
    writer.discard()
    assert list(tmp_path.iterdir()) == []
