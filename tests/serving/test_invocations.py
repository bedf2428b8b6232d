"""The one request path, called directly: every check an invocation makes, without a server.

critic.serving.invocations.invocations is what both invocation paths of the endpoint run; the
HTTP tests (test_app, test_server) show that a real request reaches it. Here each answer is
checked as the function returns it: status, message, headers, and what the metrics counted;
and, on the runtime API's path, which refusals are SageMaker's own and which the model's.
"""

import asyncio
import json
from collections import Counter

import pytest

from critic.serving.codec import ClientError
from critic.serving.invocations import (
    CUSTOM_ATTRIBUTES,
    INVOKED_VARIANT,
    invocation_path,
    invocations,
    read_asked,
)
from critic.serving.settings import ServerSettings
from critic.serving.state import start_state
from critic.serving.variants import VariantSpec

pytestmark = pytest.mark.slow  # the endpoint's state loads a trained bundle


ENDPOINT = "critic"  # ServerSettings' default endpoint name


def answer(bundle, *calls, before=None, **settings):
    """Start an endpoint's state in an event loop of its own, make the calls, stop it.
    ``before``: an async function given the state before the calls (to stop it, say)."""

    async def run():
        state = start_state(
            [VariantSpec("champion", bundle, 0.5), VariantSpec("challenger", bundle, 0.5)],
            ServerSettings(feedback_db="off", seed=0, max_reviews=3, **settings),
        )
        try:
            if before is not None:
                await before(state)
            return [await invocations(state, *args, **kwargs) for args, kwargs in calls], state
        finally:
            await state.close()

    return asyncio.run(run())


def call(body, content_type="text/plain", accept=None, **kwargs):
    return (body, content_type, accept), kwargs


def test_a_review_is_answered_with_its_variant_and_an_answer_id(nbsvm_bundle):
    (ok,), _ = answer(nbsvm_bundle, call(b"A wonderful, moving film."))
    assert ok.status == 200 and ok.message is None
    (prediction,) = json.loads(ok.body)["predictions"]
    assert prediction["label"] in ("positive", "negative") and prediction["id"]
    assert ok.headers[INVOKED_VARIANT] in ("champion", "challenger")
    assert ok.headers["X-Critic-Answer-Id"] == prediction["id"]


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"custom_attributes": "explain=ture"}, 400, "explain must be true or false"),
        ({"explain_query": "maybe"}, 400, "explain must be true or false"),
        ({"custom_attributes": "x" * 1025}, 400, "Custom-Attributes"),
        ({"target_variant": "nobody"}, 400, "nobody"),
        ({"target_variant": "bad name!"}, 400, "target variant"),
        ({"endpoint_name": "elsewhere"}, 400, "Endpoint elsewhere not found"),
    ],
)
def test_every_header_and_parameter_is_checked_in_the_one_request_path(
    nbsvm_bundle, kwargs, status, words
):
    (refused,), _ = answer(nbsvm_bundle, call(b"Fine.", **kwargs))
    assert refused.status == status and words in refused.message
    assert json.loads(refused.body) == {"status": status, "message": refused.message}


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        ((b"", "text/plain", None), 400, "empty"),
        ((b"Fine.", "image/png", None), 415, "image/png"),
        ((b"Fine.", "text/plain", "image/png"), 415, "cannot answer in 'image/png'"),
        ((json.dumps(["a", "b", "c", "d"]).encode(), "application/json", None), 413, "3"),
    ],
)
def test_the_body_and_its_content_types_are_checked_after_the_headers(
    nbsvm_bundle, args, status, words
):
    (refused,), _ = answer(nbsvm_bundle, (args, {}))
    assert refused.status == status and words in refused.message, refused.message


def test_the_custom_attributes_are_echoed_once_they_pass_and_a_chosen_variant_is_named(
    nbsvm_bundle,
):
    (ok, empty), _ = answer(
        nbsvm_bundle,
        call(b"Fine.", custom_attributes="trace=7", target_variant="challenger"),
        call(b"   ", custom_attributes="trace=8", target_variant="challenger"),
    )
    assert ok.headers[CUSTOM_ATTRIBUTES] == "trace=7"
    assert ok.headers[INVOKED_VARIANT] == "challenger"
    assert empty.status == 400 and empty.headers[CUSTOM_ATTRIBUTES] == "trace=8"
    (bad,), _ = answer(nbsvm_bundle, call(b"Fine.", custom_attributes="x" * 1025))
    assert CUSTOM_ATTRIBUTES not in bad.headers  # never echoed past SageMaker's limit


def test_explain_adds_the_words_weights_from_the_query_or_the_attributes(nbsvm_bundle):
    calls = [call(b"Wonderful acting.", **asked) for asked in (
        {}, {"explain_query": "true"}, {"custom_attributes": "a=1;explain=yes"},
        {"explain_query": ""},
    )]  # fmt: skip
    answers, _ = answer(nbsvm_bundle, *calls)
    explained = ["words" in json.loads(a.body)["predictions"][0] for a in answers]
    assert explained == [False, True, True, False]


def test_every_answer_and_refusal_is_counted_in_the_metrics(nbsvm_bundle):
    (_, _, _), state = answer(
        nbsvm_bundle,
        call(b"Fine.", target_variant="champion"),
        call(b"", target_variant="champion"),
        call(b"Fine.", endpoint_name="elsewhere"),
    )
    rendered = state.metrics.render().decode()
    counted = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in rendered.splitlines()
        if line.startswith("critic_requests_total{")
    }
    by_status = {}
    for labels, count in counted.items():
        status = labels.split('status="', 1)[1].split('"', 1)[0]
        by_status[status] = by_status.get(status, 0) + count
    assert by_status == {"200": 1, "400": 2}


def test_read_asked_is_what_the_page_in_front_of_sagemaker_checks_too():
    asked = read_asked("a=1;explain=on", "challenger", None)
    assert (asked.attributes, asked.target_variant, asked.explain) == (
        "a=1;explain=on",
        "challenger",
        True,
    )
    with pytest.raises(ClientError) as raised:
        read_asked(None, "bad name!", None)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("path", "matched"),
    [("/invocations", (True, None)), ("/endpoints/shop/invocations", (True, "shop")),
     ("/endpoints//invocations", (False, None)), ("/endpoints/a/b/invocations", (False, None)),
     ("/invocations/", (False, None)), ("/ping", (False, None))],
)  # fmt: skip
def test_both_sagemaker_paths_and_only_they_are_invocations(path, matched):
    assert invocation_path(path) == matched


def quoted(model_error) -> dict:
    """The body of a runtime API's 424: SageMaker's ModelError, as boto3 parses it."""
    assert model_error.status == 424 and model_error.content_type == "application/json"
    body = json.loads(model_error.body)
    assert body["Message"] == model_error.message
    return body


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"endpoint_name": "elsewhere"}, "Endpoint elsewhere not found"),
        ({"target_variant": "nobody"}, "no variant 'nobody'"),
        ({"target_variant": "bad name!"}, "target variant"),
        ({"custom_attributes": "x" * 1025}, "Custom-Attributes"),
        # What SageMaker checks comes before the container sees the request, whatever the
        # container would have said of it (an explain it cannot read, a body with no review).
        ({"endpoint_name": "elsewhere", "custom_attributes": "explain=ture"}, "Endpoint"),
        ({"target_variant": "nobody", "body": b"   "}, "no variant 'nobody'"),
    ],
)
def test_on_the_runtime_path_what_sagemaker_refuses_itself_stays_a_400(nbsvm_bundle, kwargs, words):
    body = kwargs.pop("body", b"Fine.")
    kwargs.setdefault("endpoint_name", ENDPOINT)
    (refused,), _ = answer(nbsvm_bundle, call(body, **kwargs))
    assert refused.status == 400 and words in refused.message, refused.message
    assert json.loads(refused.body) == {"status": 400, "message": refused.message}


@pytest.mark.parametrize(
    ("args", "kwargs", "status"),
    [
        ((b"   ", "text/plain", None), {}, 400),
        ((b"<br /> :-) !!", "text/plain", None), {}, 400),  # a review with no words
        ((b"{oops", "application/json", None), {}, 400),
        ((b"Fine.", "image/png", None), {}, 415),
        ((b"Fine.", "text/plain", "image/png"), {}, 415),
        ((json.dumps(["a", "b", "c", "d"]).encode(), "application/json", None), {}, 413),
        ((b"Fine.", "text/plain", None), {"custom_attributes": "trace=1;explain=ture"}, 400),
        ((b"Fine.", "text/plain", None), {"explain_query": "maybe"}, 400),
    ],
)
def test_on_the_runtime_path_the_containers_refusal_is_a_424_model_error_quoting_it(
    nbsvm_bundle, args, kwargs, status
):
    (container, runtime), _ = answer(
        nbsvm_bundle, (args, kwargs), (args, {**kwargs, "endpoint_name": ENDPOINT})
    )
    assert container.status == status  # /invocations answers as it always did
    assert json.loads(container.body) == {"status": status, "message": container.message}
    error = quoted(runtime)
    assert error["OriginalStatusCode"] == status
    assert error["OriginalMessage"] == container.body.decode()
    assert error["ErrorCode"] == "CLIENT_ERROR_FROM_MODEL"
    assert error["Message"].startswith(
        f'Received client error ({status}) from primary with message "{container.body.decode()}"'
    )
    assert runtime.headers == container.headers  # the echoed custom attributes, say


def test_a_server_error_of_the_container_is_a_model_error_too(nbsvm_bundle):
    async def stopping(state):
        await state.close()  # the batchers refuse new work: 503, retry in a second

    review = (b"Fine.", "text/plain", None)
    (container, runtime), _ = answer(
        nbsvm_bundle, (review, {}), (review, {"endpoint_name": ENDPOINT}), before=stopping
    )
    assert container.status == 503 and container.headers["Retry-After"] == "1"
    error = quoted(runtime)
    assert error["OriginalStatusCode"] == 503
    assert error["ErrorCode"] == "INTERNAL_FAILURE_FROM_MODEL"
    assert error["Message"].startswith("Received server error (503) from primary with message")
    assert json.loads(error["OriginalMessage"])["message"] == "the endpoint is shutting down"
    assert runtime.headers["Retry-After"] == "1"


def test_a_failure_below_the_request_path_is_a_counted_500_and_a_model_error_quoting_it(
    nbsvm_bundle, caplog
):
    async def run():
        state = start_state(
            [VariantSpec("only", nbsvm_bundle, 1.0)], ServerSettings(feedback_db="off")
        )
        # The thread that explains answers is gone: a real failure below the request path.
        state.batchers["only"]._explainer.shutdown()
        try:
            container = await invocations(state, b"Fine.", "text/plain", None, explain_query="true")
            runtime = await invocations(
                state, b"Fine.", "text/plain", None, explain_query="true", endpoint_name=ENDPOINT
            )
            return container, runtime, state.metrics.render().decode()
        finally:
            await state.close()

    container, runtime, metrics = asyncio.run(run())
    message = "variant only failed on this request (see the server's log)"
    assert container.status == 500 and json.loads(container.body)["message"] == message
    assert container.headers["x-Amzn-Invoked-Production-Variant"] == "only"
    error = quoted(runtime)
    assert error["OriginalStatusCode"] == 500 and message in error["OriginalMessage"]
    assert error["Message"].startswith("Received server error (500) from primary")
    assert "variant only failed on a request" in caplog.text  # with its traceback
    # Counted against the variant, as a rollout's error guardrail reads it.
    assert 'critic_requests_total{status="500",variant="only"} 2.0' in metrics


def test_a_refusal_on_the_runtime_path_is_counted_with_the_status_the_model_gave(nbsvm_bundle):
    _, state = answer(
        nbsvm_bundle,
        call(b"   ", endpoint_name=ENDPOINT),
        call(b"Fine.", endpoint_name="elsewhere"),
        call(b"Fine.", endpoint_name=ENDPOINT),
    )
    by_status = Counter()
    for line in state.metrics.render().decode().splitlines():
        if line.startswith("critic_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            by_status[status] += float(line.rsplit(" ", 1)[1])
    assert by_status == {"200": 1, "400": 2}  # never 424: that is SageMaker's wrapping
