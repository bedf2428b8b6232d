"""Property-based tests of every route: whatever a client sends, never a 5xx, never a
traceback, and every 4xx a JSON error with a message.

Schemathesis generates requests from the app's own OpenAPI schema (in-process, through the
ASGI app); hypothesis throws arbitrary bytes and headers at the invocation routes, whose
bodies the schema cannot describe.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import get_client

from critic.apps.endpoint import create_app
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantSpec

TOKEN = "fuzz-admin-token"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@pytest.fixture(scope="module")
def app(trained_bundle, nbsvm_bundle, tmp_path_factory):
    specs = [VariantSpec("champion", trained_bundle, 0.5), VariantSpec("nb", nbsvm_bundle, 0.5)]
    feedback = tmp_path_factory.mktemp("fuzz") / "feedback.sqlite"
    return create_app(
        specs, ServerSettings(admin_token=TOKEN, max_reviews=20, feedback_db=str(feedback))
    )


@pytest.fixture(scope="module")
def client(app):
    # Schemathesis's own in-process client: it starts the app's lifespan once and keeps it
    # (and the loaded models) for every call; a TestClient beside it would start a second one.
    with get_client(app) as client:
        yield client


def assert_answer_is_sound(status: int, content_type: str, body: bytes) -> None:
    assert status < 500 or status == 503, f"{status}: {body[:300]!r}"
    assert b"Traceback" not in body
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, body[:200])
        message = json.loads(body)["message"]
        assert isinstance(message, str) and message


def test_no_route_answers_a_server_error_whatever_the_schema_allows(app, client):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = schema.as_strategy() | schema.as_strategy(GenerationMode.NEGATIVE)

    @given(case=cases)
    @FUZZ
    def check(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
        response = case.call(session=client)
        content_type = response.headers.get("content-type", [""])
        assert_answer_is_sound(response.status_code, content_type[0], response.content)

    check()


CONTENT_TYPES = st.sampled_from(
    ["text/plain", "application/json", "text/csv", "application/jsonlines", "image/png",
     "text/plain; charset=latin-1", "text/plain; charset=utf-16", "text/plain; charset=bogus",
     "text/plain; charset=idna", "text/plain; charset=base64", "text/csv; charset=utf-16",
     "application/json; charset=utf-8", ""]
)  # fmt: skip
JSON_BODIES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_subnormal=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "review", "instances", "x"]), children, max_size=3
        )
    ),
    max_leaves=12,
).map(lambda value: json.dumps(value).encode())
BODIES = st.binary(max_size=300) | JSON_BODIES | st.text(max_size=200).map(str.encode)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    body=BODIES,
    content_type=CONTENT_TYPES,
    accept=st.sampled_from(["", "*/*", "application/json", "text/plain", "image/png"]),
    target=st.none() | st.sampled_from(["champion", "nb", "nobody", "bad name!"]) | HEADER_VALUES,
    attributes=st.none() | HEADER_VALUES,
    explain=st.sampled_from(["", "true", "false", "ture"]),
)
@FUZZ
def test_arbitrary_invocations_never_answer_a_server_error(
    client, body, content_type, accept, target, attributes, explain
):
    headers = {"Content-Type": content_type, "Accept": accept}
    if target is not None:
        headers["X-Amzn-SageMaker-Target-Variant"] = target
    if attributes is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
    response = client.post(f"/invocations?explain={explain}", data=body, headers=headers)
    assert_answer_is_sound(response.status_code, response.headers["content-type"], response.content)


def test_a_deeply_nested_json_body_is_a_client_error(client):
    body = b"[" * 20_000 + b"]" * 20_000  # under every route's size limit
    for path in ("/invocations", "/api/feedback", "/admin/weights"):
        response = client.post(
            path,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code in (400, 422), (path, response.status_code)
        assert response.json()["message"]
