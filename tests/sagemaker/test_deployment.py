"""Guarded releases on SageMaker: the traffic shift and rollback alarms an update sends, and
update_endpoint end to end.

moto's server implements S3, CloudWatch alarms and endpoint configs but not UpdateEndpoint, so
the update's SageMaker calls answer from botocore's Stubber (support.aws.StubbedSession): each
request is compared with the one expected here and checked against SageMaker's own service
model, and S3 and CloudWatch are moto's.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import boto3
import pytest

from critic.errors import CriticError
from critic.sagemaker import VariantSpec, delete_endpoint, deploy, update_endpoint
from critic.sagemaker.capture import DataCapture
from critic.sagemaker.deployment import (
    AlarmLimits,
    ReleaseOptions,
    TrafficShift,
    put_alarms,
    rollback_alarms,
)
from support.aws import (
    BUCKET,
    CPU_INFERENCE_IMAGE,
    MODEL_ENVIRONMENT,
    ROLE,
    StubbedSession,
    assert_one_line,
    quiet,
)

NOW = dt.datetime(2026, 12, 3, 10, 15, 0, tzinfo=dt.UTC)
STAMP = "r20261203101500"
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/critic-rel"


# --- the traffic shift -------------------------------------------------------------------------


def test_a_canary_release_sends_sagemakers_blue_green_policy_with_the_alarms():
    shift = TrafficShift("canary", 10, bake_s=600, final_bake_s=300)
    assert shift.deployment_config(["a", "b"]) == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 300,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]},
    }
    assert shift.expected_s() == 900


def test_a_linear_release_moves_in_steps_and_bakes_each():
    shift = TrafficShift("linear", 25, bake_s=120, max_execution_s=3600)
    config = shift.deployment_config([])
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 120,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 3600,
        }
    }
    assert shift.steps == 4 and shift.expected_s() == 4 * 120


def test_the_release_options_make_the_shift_in_seconds():
    assert ReleaseOptions(canary=5, bake_minutes=10).traffic() == TrafficShift("canary", 5, 600)
    assert ReleaseOptions(linear=20, bake_minutes=1.5, final_bake_minutes=0).traffic() == (
        TrafficShift("linear", 20, 90, 0)
    )
    assert ReleaseOptions(rollback_alarms=True).traffic() == TrafficShift("all-at-once", None, 300)
    assert not ReleaseOptions().guarded and ReleaseOptions(linear=10).guarded


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrafficShift("canary", 60), "at most half the fleet"),
        (lambda: TrafficShift("linear", 0), "whole percent from 1 to 100"),
        (lambda: TrafficShift("canary", 10.5), "whole percent"),
        (lambda: TrafficShift("all-at-once", 10), "no step size"),
        (lambda: TrafficShift("blue", 10), "must be one of all-at-once, canary, linear"),
        (lambda: TrafficShift("canary", 10, bake_s=3601), "an hour, SageMaker's limit"),
        (lambda: TrafficShift("linear", 10, 600, max_execution_s=1200), "more than max_exec"),
        (lambda: ReleaseOptions(canary=5, linear=5).traffic(), "--canary or --linear, not both"),
        (lambda: ReleaseOptions(canary=5, bake_minutes=-1).traffic(), "--bake-minutes must be"),
        (lambda: AlarmLimits(max_latency_ratio=1), "max_latency_ratio must be a number above 1"),
        (lambda: AlarmLimits(max_error_increase=1.5), "max_error_increase must be a share"),
    ],
)
def test_a_bad_release_setting_is_one_clear_line(make, message):
    with pytest.raises(CriticError, match=message) as error:
        make()
    assert_one_line(error)


# --- the alarms --------------------------------------------------------------------------------


def dimensions(metric):
    return {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"]["Dimensions"]}


def test_the_alarms_compare_the_new_fleet_with_the_old_one_by_their_configs():
    alarms = rollback_alarms("ab", ["champion"], "ab-r2", "ab", AlarmLimits())
    assert [alarm["AlarmName"] for alarm in alarms] == [
        "critic-ab-champion-latency",
        "critic-ab-champion-5xx",
        "critic-ab-champion-4xx",
    ]
    latency, errors, client_errors = alarms
    new, old, ratio = latency["Metrics"]
    assert dimensions(new) == {
        "EndpointName": "ab",
        "VariantName": "champion",
        "EndpointConfigName": "ab-r2",
    }
    assert dimensions(old)["EndpointConfigName"] == "ab"
    assert new["MetricStat"]["Metric"]["MetricName"] == "ModelLatency"
    assert new["MetricStat"]["Stat"] == "p95"
    # ModelLatency is in microseconds: the 2 ms floor is 2000.
    assert ratio == {
        "Id": "ratio",
        "Expression": "IF(new > 2000, new / old, 0)",
        "Label": "p95 ratio",
        "ReturnData": True,
    }
    assert latency["Threshold"] == 2.0 and latency["ComparisonOperator"] == "GreaterThanThreshold"
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (3, 2)
    assert errors["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "Invocation5XXErrors"
    assert errors["Metrics"][0]["MetricStat"]["Stat"] == "Average"
    assert errors["Metrics"][2]["Expression"] == "new - FILL(old, 0)"
    assert errors["Threshold"] == 0.01 and client_errors["Threshold"] == 0.05


def test_a_latency_ceiling_adds_an_alarm_in_microseconds():
    alarms = rollback_alarms("ab", ["champion"], "ab-r2", "ab", AlarmLimits(max_latency_ms=150))
    ceiling = alarms[-1]
    assert ceiling["AlarmName"] == "critic-ab-champion-latency-ceiling"
    assert ceiling["Threshold"] == 150_000.0
    assert [m["ReturnData"] for m in ceiling["Metrics"]] == [True]


def test_more_alarms_than_sagemaker_watches_are_refused():
    with pytest.raises(CriticError, match="at most 10 in one update") as error:
        rollback_alarms("ab", ["a", "b", "c", "d"], "ab-r2", "ab", AlarmLimits())
    assert_one_line(error)


def test_cloudwatch_takes_the_alarms_as_they_are(moto_url):
    cloudwatch = boto3.session.Session().client("cloudwatch")
    alarms = rollback_alarms("cw", ["AllTraffic"], "cw-r2", "cw", AlarmLimits(max_latency_ms=90))
    lines: list[str] = []
    names = put_alarms(cloudwatch, alarms, lines.append)
    stored = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    assert sorted(alarm["AlarmName"] for alarm in stored) == sorted(names)
    by_name = {alarm["AlarmName"]: alarm for alarm in stored}
    assert by_name["critic-cw-AllTraffic-latency"]["Metrics"][2]["Expression"].startswith("IF(")
    assert lines == [f"rollback alarms: {', '.join(names)}"]


# --- update_endpoint ---------------------------------------------------------------------------


def described_endpoint(config: str, status: str = "InService", **extra) -> dict:
    return {
        "EndpointName": "critic-rel",
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        **extra,
    }


def described_config(name: str, model: str, variant: str = "AllTraffic", **extra) -> dict:
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
        "CreationTime": NOW,
        **extra,
    }


CAPTURE = DataCapture(25).config(BUCKET, "critic-rel")
TAGS = [{"Key": "critic:endpoint", "Value": "critic-rel"}]
NEW_MODEL = f"critic-rel-AllTraffic-{STAMP}"
NEW_CONFIG = f"critic-rel-{STAMP}"
NEW_DATA = f"s3://{BUCKET}/critic/critic-rel/AllTraffic/{STAMP}/model.tar.gz"
ALARMS = [  # critic-ENDPOINT-VARIANT-KIND
    "critic-critic-rel-AllTraffic-latency",
    "critic-critic-rel-AllTraffic-5xx",
    "critic-critic-rel-AllTraffic-4xx",
]


def queue_release_up_to_the_update(stub, old_config_extra: dict) -> None:
    """The SageMaker calls of a canary release with alarms, up to UpdateEndpoint."""
    stub.add_response(
        "describe_endpoint", described_endpoint("critic-rel"), {"EndpointName": "critic-rel"}
    )
    stub.add_response(
        "describe_endpoint_config",
        described_config("critic-rel", "critic-rel-AllTraffic", **old_config_extra),
        {"EndpointConfigName": "critic-rel"},
    )
    stub.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{NEW_MODEL}"},
        {
            "ModelName": NEW_MODEL,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": CPU_INFERENCE_IMAGE,
                "Environment": MODEL_ENVIRONMENT,
                "ModelDataUrl": NEW_DATA,
            },
            "Tags": TAGS,
        },
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x"},
        {
            "EndpointConfigName": NEW_CONFIG,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": NEW_MODEL,
                    "InitialInstanceCount": 2,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": TAGS,
            "DataCaptureConfig": CAPTURE,
        },
    )
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": "critic-rel",
            "EndpointConfigName": NEW_CONFIG,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 600,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 600,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
            },
        },
    )


@pytest.fixture
def archive(archives):
    return archives.challenger


def release(session, archive, lines, **options):
    return update_endpoint(
        [VariantSpec("AllTraffic", archive, 1.0)],
        "critic-rel",
        ROLE,
        BUCKET,
        instance_count=2,
        traffic=TrafficShift("canary", 10, bake_s=600),
        alarms=AlarmLimits(),
        log=lines.append,
        session=session,
        now=NOW,
        **options,
    )


def test_a_release_that_bakes_cleanly_serves_the_new_config_and_removes_the_old(aws, archive):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    # The endpoint captured before: the update keeps capturing, to the same place.
    queue_release_up_to_the_update(stub, {"DataCaptureConfig": CAPTURE})
    stub.add_response("describe_endpoint", described_endpoint(NEW_CONFIG))  # the waiter
    stub.add_response("describe_endpoint", described_endpoint(NEW_CONFIG))
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "critic-rel"})
    stub.add_response("delete_model", {}, {"ModelName": "critic-rel-AllTraffic"})

    lines: list[str] = []
    done = release(session, archive, lines)

    session.assert_no_pending_responses()
    assert done.status == "InService"
    assert (done.endpoint_config_name, done.previous_config_name) == (NEW_CONFIG, "critic-rel")
    assert done.alarms == ALARMS and done.firing == []
    assert done.data_capture == CAPTURE["DestinationS3Uri"]
    key = NEW_DATA.removeprefix(f"s3://{BUCKET}/")
    assert aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == archive.read_bytes()
    cloudwatch = boto3.session.Session().client("cloudwatch")
    alarms = cloudwatch.describe_alarms(AlarmNames=ALARMS)["MetricAlarms"]
    assert len(alarms) == 3
    configs = {
        d["Value"]
        for alarm in alarms
        for metric in alarm["Metrics"]
        if "MetricStat" in metric
        for d in metric["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "EndpointConfigName"
    }
    assert configs == {NEW_CONFIG, "critic-rel"}
    text = "\n".join(lines)
    assert "a 10% canary, baked 10 minutes, then the rest" in text
    assert "deleted endpoint config critic-rel" in text


def test_a_release_whose_alarm_fires_is_reported_rolled_back_and_its_models_removed(aws, archive):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    queue_release_up_to_the_update(stub, {"DataCaptureConfig": CAPTURE})
    reason = "Deployment was rolled back: alarm critic-rel-AllTraffic-latency fired"
    stub.add_response("describe_endpoint", described_endpoint("critic-rel"))  # the waiter
    stub.add_response("describe_endpoint", described_endpoint("critic-rel", FailureReason=reason))
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW_CONFIG})
    stub.add_response("delete_model", {}, {"ModelName": NEW_MODEL})

    def fire_the_latency_alarm(**_):
        # What CloudWatch does when the new fleet is slow, as the update bakes.
        boto3.session.Session().client("cloudwatch").set_alarm_state(
            AlarmName=ALARMS[0], StateValue="ALARM", StateReason="p95 ratio 4.2 > 2"
        )

    session._clients["sagemaker"].meta.events.register(
        "after-call.sagemaker.UpdateEndpoint", fire_the_latency_alarm
    )
    lines: list[str] = []
    done = release(session, archive, lines)

    session.assert_no_pending_responses()
    assert done.status == "RolledBack"
    assert done.firing == [ALARMS[0]] and done.reason == reason
    assert done.to_dict()["firing"] == [ALARMS[0]]
    assert any(
        line.startswith("the update was rolled back: endpoint critic-rel still serves critic-rel")
        for line in lines
    )


def test_an_update_that_sagemaker_refuses_removes_the_models_and_config_it_made(aws, archive):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    queue_release_up_to_the_update(stub, {"DataCaptureConfig": CAPTURE})
    stub._queue.pop()  # UpdateEndpoint fails instead
    stub.add_client_error(
        "update_endpoint",
        "ValidationException",
        "Cannot update in-progress endpoint",
    )
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW_CONFIG})
    stub.add_response("delete_model", {}, {"ModelName": NEW_MODEL})
    lines: list[str] = []
    with pytest.raises(CriticError) as error:
        release(session, archive, lines)
    assert assert_one_line(error) == (
        "updating endpoint critic-rel failed: ValidationException: Cannot update in-progress "
        "endpoint"
    )
    session.assert_no_pending_responses()
    assert any("the update failed; removed what it had created" in line for line in lines)


def test_an_update_must_give_the_endpoints_variants_new_models_by_name(aws, archives):
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    stub.add_response("describe_endpoint", described_endpoint("critic-rel"))
    stub.add_response(
        "describe_endpoint_config", described_config("critic-rel", "m", variant="champion")
    )
    with pytest.raises(CriticError, match="has variants champion; an update gives") as error:
        update_endpoint(
            [VariantSpec("a", archives.champion, 1.0), VariantSpec("b", archives.challenger, 1)],
            "critic-rel",
            ROLE,
            BUCKET,
            log=quiet,
            session=session,
            now=NOW,
        )
    assert_one_line(error)
    session.assert_no_pending_responses()  # nothing created: no CreateModel was asked for


def test_an_endpoint_still_updating_takes_no_release(aws, archive):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_response(
        "describe_endpoint", described_endpoint("critic-rel", status="Updating")
    )
    with pytest.raises(CriticError, match="is Updating; it can take an update once") as error:
        release(session, archive, [])
    assert_one_line(error)


# --- deploy and delete with moto ---------------------------------------------------------------


def test_deploy_with_data_capture_sends_sagemakers_capture_config(aws, archives):
    done = deploy(
        [("AllTraffic", archives.champion, 1)],
        "critic-cap",
        ROLE,
        BUCKET,
        log=quiet,
        data_capture=DataCapture(20),
    )
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName="critic-cap")
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": f"s3://{BUCKET}/critic/critic-cap/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "JsonContentTypes": ["application/json", "application/jsonlines"],
            "CsvContentTypes": ["text/csv"],
        },
    }
    assert done.data_capture == f"s3://{BUCKET}/critic/critic-cap/capture"


def test_deleting_an_endpoint_deletes_its_rollback_alarms_and_no_others(aws, archives):
    deploy([("AllTraffic", archives.champion, 1)], "critic-del", ROLE, BUCKET, log=quiet)
    cloudwatch = boto3.session.Session().client("cloudwatch")
    for endpoint in ("critic-del", "critic-del-2"):
        put_alarms(
            cloudwatch,
            rollback_alarms(endpoint, ["AllTraffic"], f"{endpoint}-r2", endpoint, AlarmLimits()),
            quiet,
        )
    deleted = delete_endpoint("critic-del", log=quiet)
    mine = [f"critic-critic-del-AllTraffic-{kind}" for kind in ("latency", "5xx", "4xx")]
    assert sorted(deleted.alarms) == sorted(mine)
    left = {a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert not left & set(mine)
    assert {name.replace("critic-del", "critic-del-2") for name in mine} <= left


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    """Run ``critic ARGS`` in this process, boto3's default session being ``session``."""
    from typer.testing import CliRunner

    from critic.cli import app

    def run(*args, session=None):
        if session is not None:
            monkeypatch.setattr(boto3.session, "Session", lambda *_, **__: session)
        return CliRunner().invoke(app, [str(arg) for arg in args])

    return run


def test_deploy_with_a_canary_onto_an_endpoint_that_exists_is_a_guarded_release(
    aws, archive, cli, monkeypatch
):
    import critic.sagemaker.endpoints as endpoints

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr(endpoints.dt, "datetime", Frozen)  # the release's stamp
    session = StubbedSession("sagemaker")
    stub = session.stubbers["sagemaker"]
    stub.add_response("describe_endpoint", described_endpoint("critic-rel"))  # does it exist?
    queue_release_up_to_the_update(stub, {"DataCaptureConfig": CAPTURE})
    stub.add_response("describe_endpoint", described_endpoint("critic-rel"))  # rolled back
    stub.add_response("describe_endpoint", described_endpoint("critic-rel"))
    stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW_CONFIG})
    stub.add_response("delete_model", {}, {"ModelName": NEW_MODEL})

    result = cli(
        "sagemaker", "deploy", archive, "--endpoint", "critic-rel", "--role", ROLE,
        "--bucket", BUCKET, "--instance-count", "2", "--canary", "10", "--bake-minutes", "10",
        "--rollback-alarms", session=session,
    )  # fmt: skip

    session.assert_no_pending_responses()
    assert result.exit_code == 1, result.output  # rolled back: a scheduler sees it
    answer = json.loads(result.output.splitlines()[-1])
    assert answer["status"] == "RolledBack" and answer["previous_config"] == "critic-rel"
    assert answer["alarms"] == ALARMS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--canary", "5", "--linear", "5"], "give --canary or --linear, not both"),
        (["--canary", "70"], "at most half the fleet"),
        (["--max-latency-ratio", "3"], "the alarm limits need --rollback-alarms"),
        (["--rollback-alarms", "--max-latency-ratio", "0.5"], "max_latency_ratio must be"),
    ],
)
def test_a_bad_release_on_the_command_line_is_one_line_and_sends_nothing(
    aws, archive, cli, args, message
):
    session = StubbedSession("sagemaker")
    session.stubbers["sagemaker"].add_response("describe_endpoint", described_endpoint("x"))
    session.stubbers["sagemaker"].add_response(
        "describe_endpoint_config", described_config("critic-rel", "critic-rel-AllTraffic")
    )
    result = cli(
        "sagemaker", "update", "critic-rel", archive, "--role", ROLE, "--bucket", BUCKET, *args,
        session=session,
    )  # fmt: skip
    assert result.exit_code == 1
    assert isinstance(result.exception, CriticError) and message in str(result.exception)
    assert_one_line(SimpleNamespace(value=result.exception))
    # Refused before any AWS call: both answers queued are still waiting.
    assert len(session.stubbers["sagemaker"]._queue) == 2
