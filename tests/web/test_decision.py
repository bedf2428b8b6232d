"""The A/B view's decision through TestClient: the verdict from seeded feedback, the votes still
needed, parameters checked, and counts that outlive a restart of the app."""

import pytest
from fastapi.testclient import TestClient

from critic.apps.endpoint import create_app
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantSpec
from support.feedback import seed

TOKEN = "decision-admin-token"


def make_app(trained_bundle, second_bundle, feedback_db):
    specs = [
        VariantSpec("champion", trained_bundle, 1.0),
        VariantSpec("challenger", second_bundle, 1.0),
    ]
    settings = ServerSettings(seed=0, feedback_db=str(feedback_db), admin_token=TOKEN)
    return create_app(specs, settings)


@pytest.fixture(scope="module")
def feedback_db(tmp_path_factory):
    return tmp_path_factory.mktemp("decision") / "feedback.sqlite"


@pytest.fixture(scope="module")
def client(trained_bundle, second_bundle, feedback_db):
    with TestClient(make_app(trained_bundle, second_bundle, feedback_db)) as test_client:
        yield test_client


@pytest.fixture
def weights(client):
    """Set the weights through the admin route; equal again afterwards."""

    def change(new: dict[str, float]) -> None:
        response = client.post(
            "/admin/weights", json=new, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 200

    yield change
    change({"champion": 1.0, "challenger": 1.0})


def test_a_better_challenger_is_declared_better_with_its_interval(client, feedback_db):
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9}, votes_each=200)
    decision = client.get("/api/ab/decision").json()
    assert decision["champion"] == "champion"  # equal weights: the first
    assert (decision["alpha"], decision["min_difference"], decision["power"]) == (
        0.05,
        0.05,
        0.8,
    )
    assert "mSPRT" in decision["method"] and "independent" in decision["assumes"]
    (challenger,) = decision["challengers"]
    assert challenger["votes"] == {"champion": 200, "challenger": 200}
    # The weighted estimate (over the same moments), 90% - 60% to within its running means.
    assert challenger["difference"] == pytest.approx(0.3, abs=0.005)
    low, high = challenger["interval"]
    assert 0 < low < 0.3 < high
    assert challenger["p_value"] < 0.05
    assert challenger["verdict"] == "challenger better"
    # The page's JSON carries the same decision.
    assert client.get("/api/ab").json()["decision"]["challengers"] == decision["challengers"]


def test_the_heavier_variant_is_the_champion_and_the_verdict_is_turned_round(
    client, feedback_db, weights
):
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9}, votes_each=200)
    weights({"champion": 0.5, "challenger": 1.0})
    decision = client.get("/api/ab/decision").json()
    assert decision["champion"] == "challenger"
    assert decision["challengers"][0]["verdict"] == "champion better"


def test_equal_accuracies_are_no_difference_worth_the_wait_once_the_interval_is_narrow(
    client, feedback_db
):
    seed(feedback_db, {"champion": 0.8, "challenger": 0.8}, votes_each=3000)
    wide = client.get("/api/ab/decision", params={"min_difference": 0.01}).json()
    assert wide["challengers"][0]["verdict"] == "keep testing"
    narrow = client.get("/api/ab/decision", params={"min_difference": 0.1}).json()
    (challenger,) = narrow["challengers"]
    assert challenger["verdict"] == "no difference worth the wait"
    assert -0.1 < challenger["interval"][0] < 0 < challenger["interval"][1] < 0.1


def test_with_few_votes_it_says_keep_testing_and_how_many_votes_are_still_needed(
    client, feedback_db
):
    seed(feedback_db, {"champion": 0.5, "challenger": 0.6}, votes_each=10)
    (challenger,) = client.get(
        "/api/ab/decision", params={"min_difference": 0.1, "power": 0.8}
    ).json()["challengers"]
    assert challenger["started"] is False and challenger["verdict"] == "keep testing"
    # Pooled accuracy 55%: the textbook 50% against 60%, 388 per variant; 10 are in.
    assert challenger["votes_needed_per_variant"] == 388
    assert challenger["votes_still_needed"] == 378


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"min_difference": "abc"}, "min_difference must be a number"),
        ({"min_difference": "0"}, "min_difference must be a number above 0"),
        ({"alpha": "0.7"}, "alpha must be a number above 0 and below 0.5"),
        ({"power": "1"}, "power must be a number above 0 and below 1"),
        ({"power": "nan"}, "power must be"),
    ],
)
def test_bad_parameters_are_a_422_with_a_message(client, query, message):
    for path in ("/api/ab/decision", "/api/ab"):
        response = client.get(path, params=query)
        assert response.status_code == 422
        assert message in response.json()["message"]


def test_with_feedback_off_there_is_no_decision(trained_bundle):
    app = create_app([VariantSpec("only", trained_bundle)], ServerSettings(feedback_db="off"))
    with TestClient(app) as client:
        response = client.get("/api/ab/decision")
        assert response.status_code == 503 and "off" in response.json()["message"]
        assert client.get("/api/ab").json()["decision"] is None


def test_counts_outlive_a_restart_of_the_app(trained_bundle, second_bundle, tmp_path):
    feedback_db = tmp_path / "feedback.sqlite"
    headers = {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "challenger"}
    for _restart in range(2):
        with TestClient(make_app(trained_bundle, second_bundle, feedback_db)) as client:
            for _ in range(3):
                response = client.post("/invocations", content="Loved it", headers=headers)
                assert response.status_code == 200
            figures = {v["name"]: v for v in client.get("/api/ab").json()["variants"]}
    challenger = figures["challenger"]
    assert (challenger["requests"], challenger["errors"], challenger["reviews"]) == (6, 0, 6)
    assert challenger["all_runs_latency_ms"]["mean"] > 0
    assert challenger["latency_ms"]["window"] == 3  # the recent window is this run's
    assert figures["champion"]["requests"] == 0


def test_auto_weights_shift_the_traffic_toward_the_better_variant_and_keep_the_floor(
    trained_bundle, second_bundle, tmp_path
):
    import time

    feedback_db = tmp_path / "feedback.sqlite"
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9}, votes_each=200)
    specs = [VariantSpec("champion", trained_bundle), VariantSpec("challenger", second_bundle)]
    settings = ServerSettings(
        feedback_db=str(feedback_db), auto_weights_s=0.1, auto_weights_floor=0.1
    )
    with TestClient(create_app(specs, settings)) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            weights = {v["name"]: v["weight"] for v in client.get("/variants").json()["variants"]}
            if weights["champion"] != 1.0:
                break
            time.sleep(0.1)
        assert weights == {"champion": 0.1, "challenger": 0.9}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auto_weights_s": -1}, "auto_weights_s must lie in"),
        ({"auto_weights_floor": 0.6}, "auto_weights_floor must lie in"),
    ],
)
def test_bad_auto_weights_settings_are_refused(values, message):
    from critic.errors import CriticError

    with pytest.raises(CriticError, match=message):
        ServerSettings(**values)
