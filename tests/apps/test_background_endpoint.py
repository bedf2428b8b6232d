"""critic.apps.endpoint.start_endpoint: critic serve's endpoint in a thread of this process (what
the walkthrough notebook serves with), on a free loopback port, and stopped again."""

from __future__ import annotations

import json
import urllib.request

import pytest

from critic.apps.endpoint import start_endpoint
from critic.errors import CriticError
from critic.serving.settings import ServerSettings


def test_a_bundle_is_served_on_a_free_port_with_sagemakers_contract_and_stopped(trained_bundle):
    settings = ServerSettings(feedback_db="off")
    with start_endpoint(trained_bundle, settings, port=0) as endpoint:
        assert endpoint.running and endpoint.url.startswith("http://127.0.0.1:")
        assert not endpoint.url.endswith(":8080")
        request = urllib.request.Request(
            f"{endpoint.url}/endpoints/{endpoint.endpoint_name}/invocations",
            data=b"Not good. Not good at all.",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
        assert answer["variant"] == "AllTraffic" and len(answer["predictions"]) == 1
    assert not endpoint.running
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{endpoint.url}/ping", timeout=2)


def test_a_missing_bundle_is_one_line_and_starts_nothing(tmp_path):
    with pytest.raises(CriticError) as error:
        start_endpoint(tmp_path / "nothing", port=0)
    assert str(error.value) == f"no model bundle at {tmp_path / 'nothing'}"
    with pytest.raises(CriticError, match="at least one bundle"):
        start_endpoint([], port=0)
