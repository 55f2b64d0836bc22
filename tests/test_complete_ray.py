"""`wave-complete --ray` on a local cluster of a head and one worker node: the same output, the same skipped-series
report and the same cross-validation scores as the one-machine run (the committed default model)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.test_complete import series_values, write_daily_and_irregular, write_long
from training.complete import main

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-input")
    series = {f"s{i}": series_values(100 + 40 * i, i) for i in range(6)}
    series["s2"][[5, 6]] = np.nan
    series["short"] = series_values(50, 9)
    return write_long(folder / "in.parquet", series)


def both(capsys, tmp_path, source, cluster, *options) -> tuple[list, list]:
    """The one-machine and the Ray run's output tables and stderr/stdout."""
    results = []
    for name, extra in (("local", []), ("ray", ["--ray", cluster.address])):
        code = main([str(source), "--output", str(tmp_path / f"{name}.parquet"), *map(str, options), *extra])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        results.append((pq.read_table(tmp_path / f"{name}.parquet"), captured))
    return results


def assert_same_tables(local, remote) -> None:
    assert local.column_names == remote.column_names and local.num_rows == remote.num_rows
    for name in local.column_names:
        a, b = local.column(name).to_pylist(), remote.column(name).to_pylist()
        if isinstance(a[0], float):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
        else:
            assert a == b


def test_ray_completes_like_one_machine_and_lists_the_same_skipped_series(capsys, tmp_path, source, cluster):
    (local, local_out), (remote, remote_out) = both(capsys, tmp_path, source, cluster, "--horizon", 20, "--level", 80)
    assert_same_tables(local, remote)
    assert sorted(set(local.column("unique_id").to_pylist())) == [f"s{i}" for i in range(6)]
    skipped = [
        [line for line in out.err.splitlines() if line.startswith("  skipped: ")] for out in (local_out, remote_out)
    ]
    assert skipped[0] == skipped[1]
    assert skipped[1] == ["  skipped: in.parquet:short: 50 steps, the model needs at least 60"]
    assert "filled 2 missing values in 1 series; skipped 1" in remote_out.err


def test_ray_cross_validates_like_one_machine(capsys, tmp_path, source, cluster):
    options = ("--cross-validation", 2, "--step", 10, "--horizon", 10, "--quiet")
    (local, local_out), (remote, remote_out) = both(capsys, tmp_path, source, cluster, *options)
    assert_same_tables(local, remote)
    assert local_out.out == remote_out.out and local_out.out.splitlines()[-1].startswith("overall  ")


def test_ray_continues_a_series_without_a_frequency_with_step_numbers_like_one_machine(capsys, tmp_path, cluster):
    source = tmp_path / "odd.csv"
    write_daily_and_irregular(source, ["odd", "daily", "daily2"])
    (local, _), (remote, remote_out) = both(capsys, tmp_path, source, cluster, "--horizon", 2)
    assert_same_tables(local, remote)
    assert remote.column("ds").to_pylist() == ["120", "121", *["2024-04-30", "2024-05-01"] * 2]
    assert "ds as step numbers: odd.csv:odd: irregular time stamps: no frequency" in remote_out.err


def test_a_bad_file_on_ray_stops_with_the_same_one_line_and_writes_nothing(capsys, tmp_path, cluster):
    (tmp_path / "text.csv").write_text("a,b\n" + "1,2\n" * 70 + "3,oops\n")
    code = main(
        [str(tmp_path / "text.csv"), "--output", str(tmp_path / "out.csv"), "--quiet", "--ray", cluster.address]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert f"wave-complete failed: {tmp_path / 'text.csv'}: line 72, column 2 ('b'): 'oops' is not a number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.csv"]
