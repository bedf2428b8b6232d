"""Commands that serve: the endpoint (serve), the page in front of SageMaker (web), and the
drift and model-quality reports over what the endpoint captured (monitor)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critic.apps.sagemaker_web_settings import ProxySettings
from critic.cli.app import app, show_report
from critic.cli.options import given, options_of, with_options
from critic.errors import CriticError
from critic.monitor.thresholds import DriftThresholds, QualityThresholds
from critic.serving.settings import ServerSettings

SERVER_OPTIONS = options_of(ServerSettings)
DRIFT_OPTIONS = options_of(DriftThresholds)
QUALITY_OPTIONS = options_of(QualityThresholds)
PROXY_OPTIONS = options_of(ProxySettings)


@app.command()
@with_options(server=SERVER_OPTIONS)
def serve(
    bundle: Annotated[
        Path | None, typer.Argument(help="A bundle to serve as the single variant AllTraffic.")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=BUNDLE(:WEIGHT), repeatable: production variants sharing traffic by "
            "weight. BUNDLE may be a registry version, models:/MODEL@ALIAS or models:/MODEL/N "
            "(critic register; needs critic[tracking])."
        ),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=BUNDLE(:FRACTION), repeatable: a shadow variant gets a copy of that "
            "fraction (default 1) of the live requests after they are answered; its answers are "
            "compared with the live ones on the A/B view, never returned."
        ),
    ] = None,
    *,
    server: dict,
) -> None:
    """Serve bundles on SageMaker's hosting contract: GET /ping, POST /invocations, port 8080.

    The same server answers the web page at / and the A/B view at /ab.

    Settings may also come from the environment: CRITIC_PORT, CRITIC_ADMIN_TOKEN, ... (and
    SAGEMAKER_BIND_TO_PORT).
    """
    from critic.apps.endpoint import serve as serve_endpoint
    from critic.inference.bundle import verify_bundle
    from critic.serving.ab.feedback import open_feedback
    from critic.serving.sidecar.shadow import shadow_specs
    from critic.serving.state import feedback_path
    from critic.serving.variants import variant_specs

    bundle, variant, shadow = _fetch_registered(bundle, variant, shadow)
    specs = variant_specs(bundle, variant)
    if not specs:
        raise CriticError("nothing to serve: give a bundle, or --variant NAME=BUNDLE[:WEIGHT]")
    shadows = shadow_specs(shadow, [spec.name for spec in specs])
    for spec in [*specs, *shadows]:
        verify_bundle(spec.bundle)  # a bad bundle is one line here, not a traceback at start-up
    settings = ServerSettings.from_env(**given(SERVER_OPTIONS, server))
    if settings.backend == "onnx":
        from critic.inference.onnx import check_bundle_exportable

        for spec in [*specs, *shadows]:  # one line here, not a traceback from every worker
            check_bundle_exportable(spec.bundle)
    feedback = feedback_path(specs, settings)
    if feedback is not None:
        open_feedback(feedback)  # an unusable store is one line here, not at start-up
    for spec in specs:
        typer.echo(f"serve: variant {spec.name} = {spec.bundle} (weight {spec.weight:g})")
    for spec in shadows:
        typer.echo(f"serve: shadow {spec.name} = {spec.bundle} ({spec.fraction:.0%} of requests)")
    if settings.capture_dir:
        typer.echo(
            f"serve: capturing {settings.capture_percent:g}% of requests to {settings.capture_dir}"
        )
    typer.echo(f"serve: feedback in {feedback if feedback is not None else '(off)'}")
    typer.echo(
        f"serve: the page http://{settings.host}:{settings.port}/ and the A/B view /ab; "
        "POST /invocations, GET /ping, GET /metrics"
    )
    serve_endpoint(specs, settings, shadows)


def _fetch_registered(
    bundle: Path | None, variants: list[str] | None, shadows: list[str] | None
) -> tuple[Path | None, list[str] | None, list[str] | None]:
    """The bundle and --variant/--shadow texts with every ``models:/`` URI replaced by that
    registry version's bundle, fetched into critic's cache and checked (the tracking URI
    from CRITIC_TRACKING_URI or MLFLOW_TRACKING_URI): served from here on like any bundle."""
    from critic.tracking.registry import is_model_uri

    texts = [str(bundle) if bundle else "", *(variants or []), *(shadows or [])]
    if not any(is_model_uri(text) or "=models:/" in text for text in texts):
        return bundle, variants, shadows
    from critic.data.prepare import default_cache_dir
    from critic.serving.variants import split_spec
    from critic.tracking.registry import fetch_bundle
    from critic.tracking.settings import TrackingSettings

    settings = TrackingSettings.from_env()
    cache = default_cache_dir()

    def fetched(uri: str) -> Path:
        registered = fetch_bundle(settings, uri, cache)
        typer.echo(
            f"serve: {uri} is version {registered.version} of {registered.name}, "
            f"checked, in {registered.path}"
        )
        return registered.path

    def local(text: str, option: str, number: str) -> str:
        name, path, value = split_spec(text, option, number, "champion=models:/critic@champion")
        return f"{name}={fetched(str(path))}:{value:g}" if is_model_uri(str(path)) else text

    if bundle is not None and is_model_uri(str(bundle)):
        bundle = fetched(str(bundle))
    return (
        bundle,
        [local(text, "--variant", "WEIGHT") for text in variants or []] or variants,
        [local(text, "--shadow", "FRACTION") for text in shadows or []] or shadows,
    )


@app.command()
@with_options(thresholds=DRIFT_OPTIONS, quality=QUALITY_OPTIONS)
def monitor(
    capture: Annotated[Path, typer.Argument(help="A capture folder (critic serve --capture-dir).")],
    baseline: Annotated[
        Path, typer.Option(help="The bundle whose training data is the baseline.")
    ] = ...,  # type: ignore[assignment]
    ground_truth: Annotated[
        list[str] | None,
        typer.Option(
            help="Repeatable: true labels of the captured answers -- a feedback file "
            "(.sqlite) or table (dynamodb://TABLE), a .jsonl of Model Monitor ground-truth "
            "records, or a folder of them. Adds the model-quality report."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also write drift.md, drift.json and drift.png here (and quality.md, "
            "quality.json with --ground-truth)."
        ),
    ] = None,
    baseline_reviews: Annotated[
        int, typer.Option(help="Most reviews of the bundle's validation split to compare with.")
    ] = 2000,
    *,
    thresholds: dict,
    quality: dict,
) -> None:
    """Drift, and with --ground-truth model quality, of captured live traffic.

    Drift: how the traffic differs from the bundle's own held-out data -- score distribution
    (PSI and a Kolmogorov-Smirnov test), share of words outside the vocabulary, review length
    and the share of positive answers, over the whole capture and hour by hour.

    Quality (with --ground-truth): the captured answers joined by id with their true labels
    (votes on the page, or labels that came later: critic ground-truth export writes them),
    per variant and hour by hour -- accuracy with its Wilson interval, expected calibration
    error and the share of answers labelled, against the bundle's validation accuracy and ECE.

    Both are printed as Markdown. Exits 1 when the whole capture drifted, or (with
    --ground-truth) when a variant's quality dropped past a threshold, so a scheduler can run it.
    """
    from critic.monitor.drift import monitor as monitor_capture
    from critic.monitor.drift import write_report

    limits = given(DRIFT_OPTIONS, thresholds)
    quality_limits = QualityThresholds(**given(QUALITY_OPTIONS, quality))
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    quality_report = None
    if ground_truth:  # bad ground truth is one line before the slower drift baseline
        from critic.monitor.quality import monitor_quality, write_quality_report

        quality_report = monitor_quality(
            capture, baseline, ground_truth, thresholds=quality_limits, log=log
        )
    report = monitor_capture(
        capture,
        baseline,
        thresholds=DriftThresholds(**limits),
        baseline_reviews=baseline_reviews,
        log=log,
    )
    show_report("monitor", report, out, write_report)
    if quality_report is not None:
        show_report("monitor", quality_report, out, write_quality_report)
    if report.drift or (quality_report is not None and quality_report.dropped):
        raise typer.Exit(1)


@app.command()
@with_options(settings=PROXY_OPTIONS)
def web(*, settings: dict) -> None:
    """Serve the page, the feedback and the A/B view in front of a SageMaker endpoint.

    Reviews are answered by the endpoint (boto3's invoke_endpoint); the variant that answered
    comes from SageMaker, feedback is kept here. The page of a local model comes with
    critic serve itself. AWS credentials and region come from the environment as for every
    AWS command; the role needs sagemaker:InvokeEndpoint (and DescribeEndpoint to show the
    variants' weights).
    """
    from critic.apps.sagemaker_web import serve_proxy
    from critic.sagemaker.aws import connect
    from critic.serving.ab.feedback import open_feedback

    proxy = ProxySettings(**given(PROXY_OPTIONS, settings))
    connect(proxy.region)  # no region, or no boto3, is one line here
    feedback = proxy.feedback_path()
    if feedback is not None:
        open_feedback(feedback)  # an unusable store is one line here, not at start-up
    typer.echo(f"web: reviews answered by SageMaker endpoint {proxy.endpoint_name}")
    typer.echo(f"web: feedback in {feedback if feedback is not None else '(off)'}")
    typer.echo(f"web: the page http://{proxy.host}:{proxy.port}/ and the A/B view /ab")
    serve_proxy(proxy, log=typer.echo)
