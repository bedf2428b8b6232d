"""What SageMaker itself measured of an endpoint's variants: CloudWatch's AWS/SageMaker metrics.

A page in front of an endpoint sees only the requests that pass through it; SageMaker counts
every one -- from every page server, the Lambda, batch clients -- per production variant. The
A/B view shows these beside its own figures: over one window (the last few hours), each
variant's ``Invocations``, its 4XX and 5XX errors (``Invocation4XXErrors`` and
``Invocation5XXErrors``, the model's answers with those statuses) and ``ModelLatency`` (mean
and p95, in milliseconds; CloudWatch keeps it in microseconds). One GetMetricData request
reads them all, the whole window as one period.
"""

from __future__ import annotations

import datetime as dt

from critic.errors import CriticError
from critic.sagemaker.aws import Aws, aws_errors

NAMESPACE = "AWS/SageMaker"
MAX_HOURS = 24 * 14  # CloudWatch keeps one-minute data points for 15 days
_QUERIES = (
    ("invocations", "Invocations", "Sum"),
    ("errors_4xx", "Invocation4XXErrors", "Sum"),
    ("errors_5xx", "Invocation5XXErrors", "Sum"),
    ("latency_mean", "ModelLatency", "Average"),
    ("latency_p95", "ModelLatency", "p95"),
)


def check_hours(hours: object) -> float:
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= MAX_HOURS:
        raise CriticError(f"hours must be a number above 0 and at most {MAX_HOURS}, got {hours!r}")
    return float(hours)


def endpoint_figures(
    aws: Aws,
    endpoint_name: str,
    variants: list[str],
    hours: float = 3.0,
    now: dt.datetime | None = None,
) -> dict:
    """Each variant's CloudWatch figures over the last ``hours``, and the window they cover.

    A figure CloudWatch has no data point for (a variant that took no traffic) is None."""
    hours = check_hours(hours)
    end = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    # A whole number of minutes, at least one: CloudWatch's period is a multiple of 60 s.
    period = max(60, round(hours * 60) * 60)
    start = end - dt.timedelta(seconds=period)
    queries = []
    for index, variant in enumerate(variants):
        for key, metric, stat in _QUERIES:
            queries.append(
                {
                    "Id": f"v{index}_{key}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": "EndpointName", "Value": endpoint_name},
                                {"Name": "VariantName", "Value": variant},
                            ],
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    values: dict[str, float] = {}
    cloudwatch = aws.client("cloudwatch")
    with aws_errors(f"reading the CloudWatch metrics of endpoint {endpoint_name}"):
        # 500 queries a request is CloudWatch's limit; five a variant, ten variants at most.
        pages = cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        )
        for page in pages:
            for result in page.get("MetricDataResults", []):
                if result.get("Values"):
                    values[result["Id"]] = sum(result["Values"])
    figures = {}
    for index, variant in enumerate(variants):
        found = {key: values.get(f"v{index}_{key}") for key, _, _ in _QUERIES}
        figures[variant] = {
            "invocations": _rounded(found["invocations"]),
            "errors_4xx": _rounded(found["errors_4xx"]),
            "errors_5xx": _rounded(found["errors_5xx"]),
            "latency_ms": {
                "mean": _rounded(found["latency_mean"], 1e-3),
                "p95": _rounded(found["latency_p95"], 1e-3),
            },
        }
    return {
        "source": f"CloudWatch {NAMESPACE}",
        "endpoint": endpoint_name,
        "period": {
            "start": start.isoformat(timespec="seconds"),
            "end": end.isoformat(timespec="seconds"),
            "hours": period / 3600,
        },
        "variants": figures,
    }


def _rounded(value: float | None, scale: float = 1.0) -> float | None:
    return None if value is None else round(value * scale, 3)
