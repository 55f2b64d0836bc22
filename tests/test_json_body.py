"""JSON bodies: pydantic-core's parser gives exactly what json.loads gives, and json's errors when invalid."""

import json

import numpy as np
import pytest

from app.json_body import parse_json


def test_a_wave_body_parses_to_the_same_values_as_json_loads():
    body = json.dumps({"wave": np.random.default_rng(0).normal(size=(300, 5)).round(7).tolist(), "horizon": 9})
    assert parse_json(body.encode()) == json.loads(body)


@pytest.mark.parametrize("text", ['{"wave": [[NaN, Infinity, -Infinity]]}', "[1e400, -0.0, 12345678901234567890]"])
def test_special_numbers_parse_as_json_loads_parses_them(text):
    assert repr(parse_json(text.encode())) == repr(json.loads(text))


def test_utf16_bodies_are_read_like_json_loads_reads_them():
    assert parse_json('{"horizon": 3}'.encode("utf-16")) == {"horizon": 3}


@pytest.mark.parametrize("body", [b"{not json", b'{"a": 1,}', b"[" * 100_000])
def test_invalid_json_raises_json_loads_own_error(body):
    with pytest.raises((json.JSONDecodeError, RecursionError)):
        parse_json(body)
