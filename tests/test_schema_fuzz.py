"""Property-based fuzzing of the OpenAPI schema with schemathesis, against a real server.

Heavy operations (`/admin/*`: a reload loads, verifies, smoke-tests and compiles a model) are kept out of the
fuzzing run, whose many calls must each be quick; they get their own calls below, with a generous timeout.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.servers import running_server

API_KEY, ADMIN_TOKEN = "fuzz-key", "fuzz-admin"
AUTH = {"X-API-Key": API_KEY, "Authorization": f"Bearer {ADMIN_TOKEN}"}
HEAVY = "^/admin/"
FUZZ_TIMEOUT_S = 60  # per call; a loaded 2-core machine must not turn a quick call into a failure
HEAVY_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def api_schema():
    env = {
        "WAVE_LOG_LEVEL": "warning",
        "WAVE_API_KEY": API_KEY,
        "WAVE_ADMIN_TOKEN": ADMIN_TOKEN,
        "WAVE_MAX_BATCH_SIZE": "1",  # batching is not under test: compile one program, not six
    }
    with running_server(env=env) as (url, _):
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def has_null(value: object) -> bool:
    if isinstance(value, dict):
        return any(has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(has_null(v) for v in value)
    return value is None


def test_no_5xx_and_responses_match_the_schema(api_schema):
    operations = [result.ok() for result in api_schema.exclude(path_regex=HEAVY).get_all_operations()]
    assert len(operations) > 10
    assert not [op for op in operations if op.path.startswith("/admin/")]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case):
            # a CSV body is a string in the schema, but not every string is a CSV wave; a wave with gaps (null) may
            # miss more of a feature than the gap limit allows, and time stamps (`ds`) must be one per step at regular
            # steps, which a schema cannot say: 422 is right there
            stamps = isinstance(case.body, dict) and case.body.get("ds") is not None
            lax = case.media_type == "text/csv" or has_null(case.body) or stamps
            excluded = [positive_data_acceptance] if lax else []
            case.call_and_validate(headers=AUTH, excluded_checks=excluded, timeout=FUZZ_TIMEOUT_S)

        check()


@pytest.mark.parametrize(
    ("body", "status"),
    [({"version": "latest"}, 200), ({"version": "999"}, 404)],
)
def test_reload_answers_match_the_schema(api_schema, body, status):
    """The heavy admin operation, called on its own: a real reload and refusals, each checked against the schema."""
    operation = api_schema["/admin/reload"]["POST"]
    case = operation.Case(body=body, media_type="application/json")
    response = case.call_and_validate(headers=AUTH, timeout=HEAVY_TIMEOUT_S)
    assert response.status_code == status, response.text
