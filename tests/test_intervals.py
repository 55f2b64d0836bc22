"""Prediction intervals through HTTP: `level` on /predict, /predict/batch, CSV and /predict/plot."""

import csv
import io
import json
import shutil

import numpy as np
import pytest

from app.intervals import LEVEL_RULE
from app.schemas import example_wave
from model_store import resolve_version, sha256_of
from tests.conftest import DEFAULT_MODEL, started_app
from training.calibration import Calibration, bands, parse_rows, rows
from training.loading import load_model
from training.predict import Predictor

pytestmark = pytest.mark.anyio

W = example_wave(120, 7)


async def test_predict_answers_nested_bands_around_the_prediction(client, default_store):
    answer = await client.post("/predict", json={"wave": W, "horizon": 150, "level": [80, 95, 99.5]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    prediction = np.array(body["prediction"])
    assert set(body["intervals"]) == {"80", "95", "99.5"}
    low = {k: np.array(v["lower"]) for k, v in body["intervals"].items()}
    high = {k: np.array(v["upper"]) for k, v in body["intervals"].items()}
    for key in low:
        assert low[key].shape == high[key].shape == prediction.shape
        assert np.all(low[key] <= prediction) and np.all(prediction <= high[key])
    for narrow, wide in (("80", "95"), ("95", "99.5")):
        assert np.all(low[wide] <= low[narrow]) and np.all(high[narrow] <= high[wide])
    width = (high["80"] - low["80"]).mean(axis=1)
    assert width[-10:].mean() > width[:10].mean()  # the error grows with the step, and so does the band

    # the same bands offline: the service completes the wave's backtests (its past) beside the wave itself
    loaded = load_model(default_store, DEFAULT_MODEL, int(body["model"]["version"]))
    calibration, predictor = Calibration.from_record(loaded.calibration), Predictor(loaded.model)
    observed = np.array(W, np.float32)[None]
    backtests = [predictor(part) for part in calibration.backtest_inputs(observed)]
    assert len(backtests) == 1  # 120 steps: only the origin 50 steps before the end has 60 steps before it
    lower, upper = bands(prediction[None], observed, calibration, [80], backtests)[80]
    np.testing.assert_allclose(low["80"], lower[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(high["80"], upper[0], rtol=1e-5, atol=1e-5)


async def test_without_level_the_answer_is_as_before(client):
    body = (await client.post("/predict", json={"wave": W, "horizon": 5})).json()
    assert set(body) == {"prediction", "horizon", "filled", "model"}
    batch = (await client.post("/predict/batch", json={"waves": [W], "horizon": 5})).json()
    assert "intervals" not in batch


async def test_levels_are_keyed_as_written_and_shorter_horizons_cut_the_band(client):
    body = (await client.post("/predict", json={"wave": W, "horizon": 7, "level": [80.0, 50.5]})).json()
    assert set(body["intervals"]) == {"80", "50.5"}
    assert np.shape(body["intervals"]["50.5"]["upper"]) == (7, 5)
    full = (await client.post("/predict", json={"wave": W, "level": [80]})).json()
    np.testing.assert_allclose(body["intervals"]["80"]["lower"], np.array(full["intervals"]["80"]["lower"])[:7])


async def test_batch_answers_one_intervals_object_per_wave_in_order(client):
    waves = [W, example_wave(80, 8)]
    batch = await client.post("/predict/batch", json={"waves": waves, "horizon": 30, "level": [90]})
    assert batch.status_code == 200, batch.text
    intervals = batch.json()["intervals"]
    assert len(intervals) == 2
    for wave, expected in zip(waves, intervals, strict=True):
        single = (await client.post("/predict", json={"wave": wave, "horizon": 30, "level": [90]})).json()
        np.testing.assert_allclose(single["intervals"]["90"]["upper"], expected["90"]["upper"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("level", [[0], [100], [-5], [150], ["80"], [True], [], [10, 20, 30, 40, 50], 80, [None], "80"])
async def test_bad_levels_are_refused_with_422_naming_level(client, level):
    for path in ("/predict", "/predict/plot"):
        answer = await client.post(path, json={"wave": W, "level": level})
        assert answer.status_code == 422, (path, level, answer.text)
        assert answer.json()["detail"].startswith(f"level must be {LEVEL_RULE}"), answer.text
    batch = await client.post("/predict/batch", json={"waves": [W], "level": level})
    assert batch.status_code == 422 and batch.json()["detail"].startswith(f"level must be {LEVEL_RULE}")


@pytest.mark.parametrize(
    ("level", "detail"),
    [
        (80, "level must be a list of 1 to 4 percentages, each strictly between 0 and 100 (e.g. [80, 95]); got 80"),
        ([10, 20, 30, 40, 50], "list of 1 to 4 percentages, each strictly between 0 and 100 (e.g. [80, 95]); got [10,"),
        ([80, 150], "list of 1 to 4 percentages, each strictly between 0 and 100 (e.g. [80, 95]); 150 is not between"),
    ],
)
async def test_level_errors_say_what_level_is(client, level, detail):
    answer = await client.post("/predict", json={"wave": W, "level": level})
    assert detail in answer.json()["detail"] and "row" not in answer.text and "step" not in answer.text


async def test_csv_answer_gets_lower_and_upper_columns_per_level(client):
    text = "\n".join(",".join(str(v) for v in row) for row in W)
    headers = {"content-type": "text/csv", "accept": "text/csv"}
    answer = await client.post("/predict?horizon=12&level=80&level=95", content=text, headers=headers)
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.text)))
    header, values = rows[0], np.array(rows[1:], float)
    assert header[:5] == [f"feature_{i}" for i in range(1, 6)]
    assert header[5:9] == ["feature_1_lo80", "feature_1_hi80", "feature_2_lo80", "feature_2_hi80"]
    assert header[-2:] == ["feature_5_lo95", "feature_5_hi95"] and len(header) == 25 and values.shape == (12, 25)
    body = (await client.post("/predict", json={"wave": W, "horizon": 12, "level": [80, 95]})).json()
    np.testing.assert_allclose(values[:, header.index("feature_3_hi95")], np.array(body["intervals"]["95"]["upper"])[:, 2], rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(values[:, header.index("feature_2_lo80")], np.array(body["intervals"]["80"]["lower"])[:, 1], rtol=1e-5)  # fmt: skip
    plain = await client.post("/predict?horizon=12", content=text, headers=headers)
    assert plain.text.splitlines()[0] == ",".join(header[:5])


@pytest.mark.parametrize("query", ["level=abc", "level=100", "level=0", "level=nan", "level=inf", "level="])
async def test_bad_csv_levels_are_refused_with_422(client, query):
    text = "\n".join(",".join(str(v) for v in row) for row in W)
    answer = await client.post(f"/predict?{query}", content=text, headers={"content-type": "text/csv"})
    assert answer.status_code == 422 and answer.json()["detail"].startswith(f"level must be {LEVEL_RULE}"), answer.text


async def test_plot_shades_the_bands(client):
    plain = await client.post("/predict/plot", json={"wave": W, "horizon": 60})
    shaded = await client.post("/predict/plot", json={"wave": W, "horizon": 60, "level": [80, 95]})
    assert shaded.status_code == 200 and shaded.headers["content-type"] == "image/png"
    assert shaded.content.startswith(b"\x89PNG") and shaded.content != plain.content


async def test_a_model_without_calibration_refuses_levels(default_store, tmp_path):
    store = tmp_path / "store"
    folder = store / "wave" / "1"
    shutil.copytree(default_store / "wave" / str(resolve_version(default_store, "wave")), folder)
    (folder / "calibration.json").unlink()  # as published before calibration
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["calibration.json"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    async with started_app(store=store, model_name="wave") as (_, http):
        answer = await http.post("/predict", json={"wave": W, "level": [80]})
        assert answer.status_code == 422 and "no calibrated prediction intervals" in answer.json()["detail"]
        assert (await http.post("/predict", json={"wave": W})).status_code == 200


async def test_levels_above_what_few_calibration_windows_bound_are_refused(default_store, tmp_path):
    """A version calibrated on few windows (levels up to 83, as from a short validation part) serves 80 % bands
    and refuses 95 % rather than answering the 83 % band under that name."""
    version = resolve_version(default_store, DEFAULT_MODEL)
    folder = tmp_path / "store" / DEFAULT_MODEL / str(version)
    shutil.copytree(default_store / DEFAULT_MODEL / str(version), folder)
    record = json.loads((folder / "calibration.json").read_text())
    groups, _, horizon, columns = record["quantile_shape"]
    curves = parse_rows(record["quantiles"]).reshape(groups, -1, columns, horizon)[:, :83]
    record |= {"levels": record["levels"][:83], "quantile_shape": [groups, 83, horizon, columns]}
    record["quantiles"] = rows(curves.reshape(-1, horizon))
    (folder / "calibration.json").write_text(json.dumps(record))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["calibration.json"] = sha256_of(folder / "calibration.json")  # published so, not edited
    (folder / "manifest.json").write_text(json.dumps(manifest))
    async with started_app(store=tmp_path / "store") as (_, http):
        assert (await http.post("/predict", json={"wave": W, "level": [80]})).status_code == 200
        answer = await http.post("/predict", json={"wave": W, "level": [80, 95]})
        assert answer.status_code == 422 and "up to level 83" in answer.json()["detail"]
        assert "level 95 is too high" in answer.json()["detail"]
        v2 = await http.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=v2_body([W], horizon=20, level=[95]))
        assert v2.status_code == 400 and "up to level 83" in v2.json()["error"]  # V2's client errors are 400


def v2_body(waves, **parameters):
    batch = np.asarray(waves, np.float32)
    tensor = {"name": "wave", "datatype": "FP32", "shape": list(batch.shape), "data": batch.ravel().tolist()}
    return {"inputs": [tensor], "parameters": parameters}


async def test_v2_level_adds_lower_and_upper_outputs_equal_to_the_native_bands(client):
    waves = [W, example_wave(120, 9)]
    answer = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=v2_body(waves, horizon=20, level=[80, 99.5]))
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: np.reshape(o["data"], o["shape"]) for o in answer.json()["outputs"]}
    assert list(outputs) == ["prediction", "lower_80", "upper_80", "lower_99.5", "upper_99.5"]
    assert all(o["datatype"] == "FP32" and o["shape"] == [2, 20, 5] for o in answer.json()["outputs"])
    for i, wave in enumerate(waves):
        native = (await client.post("/predict", json={"wave": wave, "horizon": 20, "level": [80, 99.5]})).json()
        for key in ("80", "99.5"):
            np.testing.assert_allclose(outputs[f"lower_{key}"][i], native["intervals"][key]["lower"], atol=1e-4)
            np.testing.assert_allclose(outputs[f"upper_{key}"][i], native["intervals"][key]["upper"], atol=1e-4)
    single = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=v2_body([W], horizon=5, level=95))
    assert [o["name"] for o in single.json()["outputs"]] == ["prediction", "lower_95", "upper_95"]


async def test_v2_requested_outputs_choose_bands_and_binary_form(client):
    body = v2_body([W], horizon=10, level=[80])
    body["outputs"] = [{"name": "upper_80", "parameters": {"binary_data": True}}, {"name": "prediction"}]
    answer = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    header = __import__("json").loads(answer.content[:length])
    assert [o["name"] for o in header["outputs"]] == ["upper_80", "prediction"]
    upper = np.frombuffer(answer.content[length:], "<f4").reshape(1, 10, 5)
    assert np.all(upper >= np.reshape(header["outputs"][1]["data"], (1, 10, 5)))
    body["outputs"] = [{"name": "upper_95"}]
    unknown = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=body)
    assert unknown.status_code == 400 and "unknown output 'upper_95'" in unknown.json()["error"]


@pytest.mark.parametrize("level", [0, 100, [], [1, 2, 3, 4, 5], "80", [True], [80, None], {"a": 1}])
async def test_v2_bad_levels_get_400_in_protocol_form(client, level):
    answer = await client.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=v2_body([W], level=level))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"parameter 'level' must be {LEVEL_RULE}")
