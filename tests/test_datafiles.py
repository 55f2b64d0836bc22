"""Reading a user's data files, the split in time, the windows and the seasonal baseline (no TensorFlow)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.baselines import seasonal_naive
from training.config import ModelConfig, TrainConfig
from training.datafiles import DataFileError, read_data_file, read_data_files
from training.file_source import FileSource, Split, pack, split_series, unpack, window_starts
from training.seasonality import estimate_period, estimate_periods, seasonal_naive_error

MODEL = ModelConfig(channel_independent=True, decoder_state="all_layers")
MIN_LENGTH = MODEL.min_input_length + MODEL.horizon


def write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wide_csv_reads_one_series_per_column_skips_ds_and_keeps_gaps(tmp_path):
    rows = ["ds,a,b"] + [f"2024-01-{i:03d},{i},{'' if i == 5 else 2 * i}" for i in range(300)]
    rows[-1] = "2024-01-299,299,"  # a trailing gap: b ends one step earlier
    data = read_data_file(write_csv(tmp_path / "w.csv", rows), MIN_LENGTH)
    assert data.layout == "wide" and [s.name for s in data.series] == ["w.csv:a", "w.csv:b"]
    a, b = (s.values for s in data.series)
    assert np.array_equal(a, np.arange(300)) and len(b) == 299
    assert np.isnan(b[5]) and b[6] == 12
    assert data.describe()["sha256"] and data.describe()["size"] == (tmp_path / "w.csv").stat().st_size


def test_long_csv_groups_by_unique_id_and_accepts_nan_and_na_as_gaps(tmp_path):
    rows = ["unique_id,ds,y"]
    for t in range(250):
        rows += [f"x,{t},{t}", f"y,{t},{'nan' if t == 3 else 'NA' if t == 4 else -t}"]  # interleaved series
    data = read_data_file(write_csv(tmp_path / "l.csv", rows), MIN_LENGTH)
    assert data.layout == "long" and [s.name for s in data.series] == ["l.csv:x", "l.csv:y"]
    assert np.array_equal(data.series[0].values, np.arange(250))
    assert np.isnan(data.series[1].values[3:5]).all() and data.series[1].values[5] == -5


def test_parquet_wide_and_long_read_like_csv(tmp_path):
    values = np.arange(300, dtype=np.float64)
    values[7] = np.nan
    pq.write_table(pa.table({"ds": np.arange(300), "s": values}), tmp_path / "w.parquet")
    wide = read_data_file(tmp_path / "w.parquet", MIN_LENGTH)
    assert wide.layout == "wide" and wide.series[0].name == "w.parquet:s" and np.isnan(wide.series[0].values[7])
    table = pa.table({"unique_id": ["a"] * 300 + ["b"] * 300, "ds": list(range(300)) * 2, "y": [1.0] * 600})
    pq.write_table(table, tmp_path / "l.parquet")
    long = read_data_file(tmp_path / "l.parquet", MIN_LENGTH)
    assert long.layout == "long" and [len(s.values) for s in long.series] == [300, 300]


def test_numpy_files_1d_2d_and_npz(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(300.0))
    np.save(tmp_path / "two.npy", np.ones((300, 3)))
    np.savez(tmp_path / "many.npz", first=np.arange(300.0), second=np.ones((300, 2)))
    files = read_data_files([tmp_path / "one.npy", tmp_path / "two.npy", tmp_path / "many.npz"], MIN_LENGTH)
    names = [s.name for f in files for s in f.series]
    assert names[:4] == ["one.npy:0", "two.npy:0", "two.npy:1", "two.npy:2"]
    assert names[4:] == ["many.npz:first", "many.npz:second[0]", "many.npz:second[1]"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("noheader.csv", "1,2\n3,4\n", "line 1 is not a header row"),
        ("text.csv", "a,b\n1,2\n3,oops\n", "line 3, column 2 ('b'): 'oops' is not a number"),
        ("inf.csv", "a\n1\ninf\n", "line 3, column 1 ('a'): 'inf' is not a finite number"),
        ("ragged.csv", "a,b\n1,2\n3\n", "line 3 has 1 cells, the header has 2"),
        ("short.csv", "a\n" + "1\n" * 100, "series 'short.csv:a' has 100 steps, too short for one window (210 steps"),
        ("extra.csv", "unique_id,ds,y,temp\nx,1,2,3\n", "unknown: 'temp' (column 4)"),
        ("missing.csv", "unique_id,y\nx,1\n", "needs the columns ds"),
        ("unsorted.csv", "unique_id,ds,y\nx,2,1\nx,1,1\n", "line 3: ds '1' of series 'x' does not come after '2'"),
        ("bad.parquet", "this is not parquet", "unreadable Parquet file"),
        ("bad.npy", "nor numpy", "unreadable NumPy file"),
        ("data.xlsx", "", "unknown file type '.xlsx'"),
        ("empty.csv", "", "is empty"),
    ],
)
def test_bad_files_raise_errors_naming_file_line_and_column(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFileError) as error:
        read_data_file(path, MIN_LENGTH)
    assert str(path) in str(error.value) and message in str(error.value)


def test_non_numeric_parquet_column_and_npy_of_strings_are_refused(tmp_path):
    pq.write_table(pa.table({"s": ["a"] * 300}), tmp_path / "s.parquet")
    with pytest.raises(DataFileError, match="column 's' holds string, not numbers"):
        read_data_file(tmp_path / "s.parquet", MIN_LENGTH)
    np.save(tmp_path / "s.npy", np.array(["x"] * 300))
    with pytest.raises(DataFileError, match="holds <U1, not numbers"):
        read_data_file(tmp_path / "s.npy", MIN_LENGTH)
    np.save(tmp_path / "cube.npy", np.zeros((300, 2, 2)))
    with pytest.raises(DataFileError, match=r"shape \(300, 2, 2\)"):
        read_data_file(tmp_path / "cube.npy", MIN_LENGTH)


def test_estimated_period_is_the_autocorrelation_peak_despite_a_trend():
    t = np.arange(2000)
    rng = np.random.default_rng(0)
    assert estimate_period(np.sin(2 * np.pi * t / 52) + 0.01 * t + 0.1 * rng.standard_normal(2000), 300) == 52
    assert estimate_period(np.sin(2 * np.pi * t / 24), 300) == 24
    assert estimate_period(np.ones(2000), 300) == 1  # constant: no peak
    rows = np.stack([np.sin(2 * np.pi * t / 52), np.sin(2 * np.pi * t / 24), np.ones(2000), rng.standard_normal(2000)])
    periods = estimate_periods(rows, 300)  # vectorized over rows, each as on its own
    np.testing.assert_array_equal(periods, [estimate_period(row, 300) for row in rows])
    errors = seasonal_naive_error(rows[:2], periods[:2])
    np.testing.assert_allclose(errors, 0, atol=1e-9)  # whole periods repeat exactly
    assert seasonal_naive_error(np.arange(10.0)[None, :], np.array([3]))[0] == 3.0


def test_seasonal_naive_repeats_the_last_cycle():
    observed = np.arange(10.0)[None, :, None]
    forecast = seasonal_naive(observed, 7, 3)
    assert forecast[0, :, 0].tolist() == [7, 8, 9, 7, 8, 9, 7]


def test_split_is_in_time_and_gaps_fill_within_each_part():
    raw = np.arange(1000, dtype=np.float64)
    raw[699:702] = np.nan  # a gap across the training / validation boundary (700)
    series = split_series("s", raw, Split(0.2, 0.1), MODEL)
    assert (series.train_end, series.val_end) == (700, 800)
    assert series.values[699] == 698  # the training part's end is filled from the training part alone
    assert series.values[700] == series.values[701] == 702  # the validation part's start from the validation part
    assert series.describe()["gaps_filled"] == 3


def test_too_short_training_part_and_too_many_gaps_are_errors():
    with pytest.raises(DataFileError, match=r"training part \(the first 175\) is too short"):
        split_series("s", np.zeros(250), Split(0.2, 0.1), MODEL)
    raw = np.zeros(1000)
    raw[800:950] = np.nan
    with pytest.raises(DataFileError, match="series 's', its test part"):
        split_series("s", raw, Split(0.2, 0.1), MODEL)


def test_window_rule_keeps_predictions_inside_the_part():
    starts = window_starts(800, 1000, 150, 15)
    assert starts.tolist() == [800, 815, 830, 845, 850]
    assert window_starts(800, 900, 150, 15).size == 0


def source_of(tmp_path, steps=1000, count=2):
    np.save(tmp_path / "ramp.npy", np.stack([np.arange(steps, dtype=np.float64) + 10_000 * i for i in range(count)], 1))
    return FileSource(read_data_files([tmp_path / "ramp.npy"], MIN_LENGTH), Split(), MODEL)


def test_training_windows_never_reach_into_validation_or_test(tmp_path):
    source = source_of(tmp_path)
    rng = np.random.default_rng(0)
    low, high = source.observed_range()
    assert (low, high) == (60, 300)
    for observed in (low, high):
        x, y = source.batch(rng, 64, observed, 150)
        assert x.shape == (64, observed, 5) and y.shape == (64, 150, 5) and x.dtype == np.float32
        steps = np.concatenate([x, y], axis=1) % 10_000  # the ramp's value is its step
        assert steps.max() < 700
        assert np.all(np.diff(steps, axis=1) == 1)  # consecutive steps of one series per feature


def test_validation_and_test_windows_follow_the_rule(tmp_path):
    source = source_of(tmp_path)
    [(observed, target)] = source.validation_sets(TrainConfig())
    # validation part 700..799 (100 steps): one window predicting all of it, from the 300 steps before
    assert target.shape == (1, 100, 5) and observed.shape == (1, 300, 5)
    assert target[0, 0, 0] == 700 and target[0, -1, 0] == 799 and observed[0, 0, 0] == 400
    test = source.windows(source.series[1], "test")
    assert test.target.shape == (5, 150)  # test part 800..999: starts 800, 815, 830, 845 and 850 (the last)
    assert (test.target % 10_000).min() >= 800 and (test.observed % 10_000).min() >= 500


def test_pack_and_unpack_are_inverse():
    windows = np.arange(7 * 4, dtype=np.float32).reshape(7, 4)
    waves = pack(windows, 5)
    assert waves.shape == (2, 4, 5) and np.array_equal(waves[0, :, 1], windows[1])
    assert np.array_equal(unpack(waves, 7), windows)


def test_no_validation_or_test_window_is_an_error_naming_the_fraction(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros(600))
    files = read_data_files([tmp_path / "s.npy"], MIN_LENGTH)
    with pytest.raises(DataFileError, match=r"no series has a test part of 150 steps.*--test-fraction"):
        FileSource(files, Split(), MODEL)
    with pytest.raises(DataFileError, match="--val-fraction"):
        FileSource(files, Split(0.3, 0.0), MODEL)
