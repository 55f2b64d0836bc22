"""The page (GET / and its assets), the sample waves (GET /samples) and the PNG chart (POST /predict/plot)."""

import re
import struct
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest

from training.data import unit_waves

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class References(HTMLParser):
    """Every src and href in an HTML document."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


def wave(steps=120, seed=0):
    return (4.0 * unit_waves(np.random.default_rng(seed), 1, steps, split="test")[0] - 7.0).tolist()


async def test_page_is_html_with_viewport_and_stable_ids(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<meta name="viewport"' in html
    ids = ("model-select", "model-limits", "sample-select", "csv-input", "csv-file", "complete-button", "chart")
    for element in (*ids, "error", "latency"):
        assert f'id="{element}"' in html
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_page_loads_only_local_assets_and_each_is_served(client):
    html = (await client.get("/")).text
    urls = references(html)
    assets = [url for url in urls if url.startswith("static/")]
    assert {"static/app.js", "static/style.css"} <= set(assets)
    for url in urls:
        target = urlsplit(urljoin("http://testserver/", url))
        assert target.netloc == "testserver", f"{url} is not served by the app"
        response = await client.get(target.path)
        assert response.status_code == 200, url
    texts = [html] + [(await client.get(f"/{asset}")).text for asset in assets if not asset.endswith(".svg")]
    for text in texts:
        # the SVG namespace is a name, not a download
        assert not re.search(r"(https?:)?//(?!www\.w3\.org/2000/svg)[\w.-]+\.\w+/", text)
        assert "@import" not in text and "@font-face" not in text


async def test_assets_have_their_content_types(client):
    expected = {"app.js": "javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
    for name, kind in expected.items():
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    missing = await client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["detail"]


async def test_samples_have_observed_part_and_truth(client):
    response = await client.get("/samples", params={"count": 3, "seed": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["features"] == 5 and body["horizon"] == 150 and body["split"] == "test"
    samples = body["samples"]
    assert len(samples) == 3 and len({s["id"] for s in samples}) == 3
    for sample in samples:
        assert 100 <= len(sample["wave"]) <= 300
        assert all(len(row) == 5 for row in sample["wave"])
        assert len(sample["truth"]) == 150 and all(len(row) == 5 for row in sample["truth"])
        values = np.array(sample["wave"])
        assert np.isfinite(values).all() and values.std(axis=0).min() > 0


async def test_samples_default_count_and_determinism(client):
    first = (await client.get("/samples", params={"seed": 3})).json()["samples"]
    again = (await client.get("/samples", params={"seed": 3})).json()["samples"]
    other = (await client.get("/samples", params={"seed": 4})).json()["samples"]
    assert len(first) == 5
    assert first == again
    assert first != other
    more = (await client.get("/samples", params={"seed": 3, "count": 8})).json()["samples"]
    assert more[:5] == first


async def test_samples_are_completed_close_to_their_truth(client):
    """Near the model's measured accuracy (MAE / amplitude 0.038 on the held-out test set, see its manifest), far
    below what the window mean (0.65) or any other flat guess can reach."""
    samples = (await client.get("/samples", params={"count": 10, "seed": 11})).json()["samples"]
    batch = (await client.post("/predict/batch", json={"waves": [s["wave"] for s in samples]})).json()["predictions"]
    errors, flat_errors = [], []
    for sample, prediction in zip(samples, batch, strict=True):
        truth, observed = np.array(sample["truth"]), np.array(sample["wave"])
        amplitude = (observed.max(axis=0) - observed.min(axis=0)) / 2
        errors.append(np.abs(np.array(prediction) - truth).mean(axis=0) / amplitude)
        flat_errors.append(np.abs(observed.mean(axis=0) - truth).mean(axis=0) / amplitude)
    assert np.mean(errors) < 0.08, f"MAE / amplitude {np.mean(errors):.3f}"
    assert np.max(errors) < 0.25, f"worst feature: MAE / amplitude {np.max(errors):.3f}"
    assert np.mean(flat_errors) > 0.4  # the bound tells a completion from a flat line


@pytest.mark.parametrize("params", [{"count": 0}, {"count": 21}, {"count": "many"}, {"seed": -1}])
async def test_bad_sample_requests_get_422_in_words(client, params):
    response = await client.get("/samples", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_plot_is_a_png_chart(client):
    response = await client.post("/predict/plot", json={"wave": wave(), "horizon": 150})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    width, height = png_size(response.content)
    assert 400 <= width <= 2000 and 300 <= height <= 2000
    assert len(response.content) > 10_000


async def test_plot_of_a_long_wave_with_a_short_horizon(client):
    response = await client.post("/predict/plot", json={"wave": wave(steps=2000, seed=1), "horizon": 10})
    assert response.status_code == 200 and response.content.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"wave": wave()[:12]}, "wave has 12 steps, at least 60 are needed"),
        ({"wave": [r[:4] if i == 3 else r for i, r in enumerate(wave())]}, "row 3 has 4 values, row 0 has 5"),
        ({"wave": wave(), "horizon": 0}, "horizon must be"),
        ({}, "field 'wave' is required"),
    ],
)
async def test_bad_plot_requests_get_422_in_words(client, body, message):
    response = await client.post("/predict/plot", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]


async def test_openapi_documents_the_png_and_the_samples(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "image/png" in paths["/predict/plot"]["post"]["responses"]["200"]["content"]
    assert "/predict" in paths and "/predict/batch" in paths
    parameters = {p["name"]: p for p in paths["/samples"]["get"]["parameters"]}
    assert parameters["count"]["schema"]["maximum"] == 20 and parameters["count"]["schema"]["minimum"] == 1
    assert "/" not in paths  # the page is not part of the API


async def test_plot_needs_the_api_key_like_predict():
    from tests.conftest import started_app

    async with started_app(api_key="s3cret", max_batch_size=1) as (_, http):
        body = {"wave": wave(), "horizon": 20}
        refused = await http.post("/predict/plot", json=body)
        assert refused.status_code == 401 and "API key" in refused.json()["detail"]
        allowed = await http.post("/predict/plot", json=body, headers={"X-API-Key": "s3cret"})
        assert allowed.status_code == 200 and allowed.content.startswith(PNG_SIGNATURE)
        page = await http.get("/")
        assert page.status_code == 200 and 'id="api-key"' in page.text


async def test_the_page_reads_csv_with_the_services_reader(client):
    """The page has no CSV reader of its own: it posts what is pasted to POST /csv, which reads it with the rules
    of a CSV body of /predict, and draws what comes back."""
    script = (await client.get("/static/app.js")).text
    assert 'api("csv"' in script and "split(separator)" not in script and "parseCsv" not in script
    semicolon = '\ufeffa;b\r\n1,5;-2,25\r\n"3,0";NA\r\n;4\r\n'  # a decimal-comma spreadsheet export
    answer = await client.post("/csv", content=semicolon.encode(), headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"wave": [[1.5, -2.25], [3.0, None], [None, 4.0]], "names": ["a", "b"], "ds": None}
    plain = await client.post("/csv", content=b"1,2\n\n3,nan\n", headers={"content-type": "text/csv"})
    assert plain.json() == {"wave": [[1.0, 2.0], [3.0, None]], "names": None, "ds": None}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        ("a,b\n1,2\n1,x\n", "text/csv", 422, "CSV line 3 (row 1), column 1: 'x' is not a number"),
        ("a;b\n1,5;2\n\n1;2,5,1\n", "text/csv", 422, "CSV line 4 (row 1), column 1: '2,5,1' is not a number"),
        ("a,b\n1,2\n-inf,1\n", "text/csv", 422, "CSV line 3: value at row 1, column 0 is not finite"),
        ("a,b\n", "text/csv", 422, "the CSV has no data rows"),
        ("1,2\n", "application/json", 415, "unsupported Content-Type 'application/json'"),
    ],
)
async def test_csv_that_cannot_be_read_is_refused_naming_line_and_column(client, body, content_type, status, detail):
    answer = await client.post("/csv", content=body.encode(), headers={"content-type": content_type})
    assert answer.status_code == status and answer.json()["detail"].startswith(detail)
    if "CSV line" in detail:  # /predict says the same of the same CSV body
        predicted = await client.post("/predict", content=body.encode(), headers={"content-type": content_type})
        assert predicted.status_code == 422 and predicted.json()["detail"] == detail
