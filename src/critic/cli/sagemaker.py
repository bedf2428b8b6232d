"""Commands for Amazon SageMaker: package a model artifact, and the ``critic sagemaker`` group
(train as a job, register and approve versions, deploy, scale, invoke, transform, shift
traffic, delete). What SageMaker's
contract asks (hyper-parameters, artifacts, instance types) lives in :mod:`critic.sagemaker`;
these commands parse, call and print."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from critic.cli.app import (
    EndpointArgument,
    RegionOption,
    ReviewsArgument,
    app,
    echo_json,
    reviews_or_stdin,
)
from critic.cli.options import given, options_of, with_options
from critic.cli.train import RUN_OPTIONS
from critic.errors import CriticError
from critic.sagemaker.deployment import AlarmLimits, ReleaseOptions
from critic.sagemaker.endpoints import INSTANCE_TYPE as ENDPOINT_INSTANCE_TYPE
from critic.sagemaker.endpoints import packaged_variants
from critic.sagemaker.training import TrainingJobOptions
from critic.sagemaker.transform import INSTANCE_TYPE as TRANSFORM_INSTANCE_TYPE

sagemaker_app = typer.Typer(
    help="Amazon SageMaker: train as a job, register and approve model versions, deploy an "
    "endpoint, scale it, invoke it, shift its traffic, delete it.",
    no_args_is_help=True,
)
app.add_typer(sagemaker_app, name="sagemaker")
JOB_OPTIONS = options_of(TrainingJobOptions)
RELEASE_OPTIONS = options_of(ReleaseOptions)
ALARM_OPTIONS = options_of(AlarmLimits)
# What deploy and update both take, declared once.
RoleOption = Annotated[str, typer.Option(help="IAM execution role ARN for the models.")]
BucketOption = Annotated[str, typer.Option(help="S3 bucket to upload the artifacts to.")]
InstanceTypeOption = Annotated[str, typer.Option(help="Instance type of every variant.")]
InstanceCountOption = Annotated[int, typer.Option(help="Instances per variant.")]
ImageOption = Annotated[
    str | None, typer.Option(help="Serving image URI (default: SageMaker's PyTorch image).")
]
DataCaptureOption = Annotated[
    int | None,
    typer.Option(
        help="Capture this percent of the calls (requests and answers) to "
        "s3://BUCKET/critic/ENDPOINT/capture; critic sagemaker capture brings them down for "
        "critic monitor."
    ),
]


@app.command()
def package(
    bundle: Annotated[Path | None, typer.Argument(help="A trained bundle folder.")] = None,
    out: Annotated[Path, typer.Option(help="The model.tar.gz to write.")] = Path("model.tar.gz"),
    backend: Annotated[
        str,
        typer.Option(
            help="What runs the neural models in the container: torch (its own PyTorch), "
            "onnx (ONNX Runtime; checked here first) or auto (ONNX Runtime for lstm, gru and "
            "attention). onnx and auto add onnxruntime to code/requirements.txt."
        ),
    ] = "torch",
    lambda_zip: Annotated[
        Path | None,
        typer.Option(
            "--lambda",
            help="Also (or only) write the Lambda function for API Gateway in front of a "
            "SageMaker endpoint, as this .zip.",
        ),
    ] = None,
) -> None:
    """Write a SageMaker model artifact: the bundle, code/inference.py and code/requirements.txt.

    The PyTorch serving container loads it as it is; critic's own source travels in code/.
    With --lambda api.zip: the Lambda function that puts API Gateway in front of the endpoint
    (standard library and boto3 only; its endpoint comes from CRITIC_ENDPOINT_NAME).
    """
    if bundle is None and lambda_zip is None:
        raise CriticError("nothing to package: give a bundle, or --lambda api.zip")
    if lambda_zip is not None:
        from critic.sagemaker.lambda_package import deployment_hints, package_lambda

        written = package_lambda(lambda_zip)
        typer.echo(f"package: {written} ({written.stat().st_size / 1e3:.1f} kB)")
        for line in deployment_hints(written):
            typer.echo(line)
    if bundle is not None:
        from critic.inference.bundle import package_bundle

        if backend == "onnx":
            # Export and compare with PyTorch now: a model ONNX Runtime cannot answer for is
            # refused here, in one line, rather than by the endpoint after a deployment.
            from critic.inference.predictor import Predictor

            Predictor.load(bundle, backend="onnx")
        written = package_bundle(bundle, out, backend=backend)
        size = written.stat().st_size / 1e6
        typer.echo(f"package: {written} ({size:.1f} MB, backend {backend})")


@sagemaker_app.command("train")
@with_options(settings=RUN_OPTIONS, job=JOB_OPTIONS)
def sagemaker_train(*, settings: dict, job: dict) -> None:
    """Submit a training as a SageMaker training job: the settings given become its
    hyper-parameters, and --data s3://... its training channel. The job runs critic train."""
    from critic.sagemaker.training import submit_training

    submitted = submit_training(
        settings, TrainingJobOptions(**given(JOB_OPTIONS, job)), log=typer.echo
    )
    echo_json(
        {"training_job": submitted.name, "status": submitted.status, "output": submitted.output_uri}
    )


@sagemaker_app.command()
@with_options(release=RELEASE_OPTIONS, limits=ALARM_OPTIONS)
def deploy(
    artifact: Annotated[
        Path | None,
        typer.Argument(
            help="A model.tar.gz (or a bundle folder, packaged on the way) for one variant, AllTraffic."
        ),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name.")] = ...,  # type: ignore[assignment]
    role: RoleOption = ...,  # type: ignore[assignment]
    bucket: Annotated[
        str | None,
        typer.Option(
            help="S3 bucket to upload the artifacts to (not needed for --model-package alone)."
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ARTIFACT(:WEIGHT), repeatable: production variants."),
    ] = None,
    model_package: Annotated[
        str | None,
        typer.Option(
            help="Serve this Approved version of the Model Registry (a model package ARN; "
            "critic sagemaker versions GROUP lists them) as the one variant, AllTraffic."
        ),
    ] = None,
    instance_type: InstanceTypeOption = ENDPOINT_INSTANCE_TYPE,
    instance_count: InstanceCountOption = 1,
    image: ImageOption = None,
    region: RegionOption = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
    min_instances: Annotated[
        int | None, typer.Option(help="Autoscaling: fewest instances per variant (default 1).")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option(help="Autoscaling: most instances per variant.")
    ] = None,
    target_invocations: Annotated[
        float | None,
        typer.Option(
            help="Autoscaling: invocations per instance per minute to hold "
            "(SageMakerVariantInvocationsPerInstance; bench/serve_load.py suggests one)."
        ),
    ] = None,
    data_capture: DataCaptureOption = None,
    *,
    release: dict,
    limits: dict,
) -> None:
    """Deploy to Amazon SageMaker: upload, create the models, an endpoint config with production
    variants and weights, and the endpoint. Delete it with critic sagemaker delete-endpoint when
    done: a running endpoint is billed by the hour.

    With --max-instances and --target-invocations every variant scales between
    --min-instances and --max-instances (Application Auto Scaling target tracking); change it
    later with critic sagemaker autoscale.

    With --model-package ARN the endpoint serves a version of the Model Registry (critic
    sagemaker register), once it is Approved: nothing is uploaded, and its model is created
    from the package.

    With --canary, --linear or --rollback-alarms, deploying onto an endpoint that exists is a
    guarded release (critic sagemaker update); a new endpoint takes its traffic at once and
    the options guard its later releases."""
    from critic.sagemaker import deploy as deploy_endpoint
    from critic.sagemaker.endpoints import find_endpoint

    options = ReleaseOptions(**given(RELEASE_OPTIONS, release))
    scaling = _scaling_limits(min_instances, max_instances, target_invocations)
    specs = _variants_to_send(artifact, variant, model_package)
    capture = _data_capture(data_capture)
    if options.guarded:
        traffic = options.traffic()  # a bad step is refused before anything is packaged
        if find_endpoint(endpoint, region) is not None:
            if scaling is not None:
                raise CriticError(
                    "an update keeps the endpoint's autoscaling: change it with critic "
                    "sagemaker autoscale, not with the release"
                )
            _release(
                specs, endpoint, role, bucket, instance_type, instance_count, image, region,
                wait, traffic, options, limits, capture,
            )  # fmt: skip
            return
        typer.echo(
            f"endpoint {endpoint} is new: it takes all its traffic at once; "
            f"{traffic.describe()} guards its later releases (critic sagemaker update)"
        )
    with tempfile.TemporaryDirectory(prefix="critic-deploy-") as scratch:
        deployment = deploy_endpoint(
            packaged_variants(specs, Path(scratch)),
            endpoint,
            role,
            bucket,
            instance_type=instance_type,
            instance_count=instance_count,
            image_uri=image,
            region=region,
            wait=wait,
            log=typer.echo,
            autoscaling=scaling,
            data_capture=capture,
        )
    answer = {"endpoint": deployment.endpoint_name, "status": deployment.status}
    if deployment.autoscaling:
        answer["autoscaling"] = [entry.to_dict() for entry in deployment.autoscaling]
    if deployment.data_capture:
        answer["data_capture"] = deployment.data_capture
    echo_json(answer)


@sagemaker_app.command()
@with_options(release=RELEASE_OPTIONS, limits=ALARM_OPTIONS)
def update(
    endpoint: EndpointArgument,
    artifact: Annotated[
        Path | None,
        typer.Argument(help="A model.tar.gz (or a bundle folder) for the endpoint's one variant."),
    ] = None,
    role: RoleOption = ...,  # type: ignore[assignment]
    bucket: BucketOption = ...,  # type: ignore[assignment]
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=ARTIFACT(:WEIGHT), repeatable: a new model for each of the endpoint's "
            "variants, by its name."
        ),
    ] = None,
    instance_type: InstanceTypeOption = ENDPOINT_INSTANCE_TYPE,
    instance_count: InstanceCountOption = 1,
    image: ImageOption = None,
    region: RegionOption = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until the update ends (served, or rolled back).")
    ] = True,
    data_capture: DataCaptureOption = None,
    *,
    release: dict,
    limits: dict,
) -> None:
    """Release new models onto a SageMaker endpoint, blue/green: a new fleet starts beside the
    old one and the traffic moves over all at once, as a --canary, or in --linear steps, each
    baked for --bake-minutes. With --rollback-alarms, CloudWatch alarms compare the new fleet
    with the old one (p95 latency, 5XX and 4XX shares) and SageMaker moves all the traffic back
    when one fires. Exits 1 when the update was rolled back."""
    options = ReleaseOptions(**given(RELEASE_OPTIONS, release))
    traffic = options.traffic()
    specs = _variants_to_send(artifact, variant)
    _release(
        specs, endpoint, role, bucket, instance_type, instance_count, image, region, wait,
        traffic, options, limits, _data_capture(data_capture),
    )  # fmt: skip


def _variants_to_send(
    artifact: Path | None, texts: list[str] | None, model_package: str | None = None
):
    from critic.serving.variants import DEFAULT_VARIANT, variant_specs

    if model_package is not None:
        from critic.sagemaker import ModelPackageVariant

        if artifact is not None or texts:
            raise CriticError(
                "--model-package serves one registry version as the endpoint's one variant: "
                "give it without an ARTIFACT or --variant"
            )
        return [ModelPackageVariant(DEFAULT_VARIANT, model_package)]
    specs = variant_specs(artifact, texts)  # repeated names fail before anything is packaged
    if not specs:
        raise CriticError(
            "nothing to deploy: give a model.tar.gz, --variant NAME=ARTIFACT[:WEIGHT], or "
            "--model-package ARN"
        )
    return specs


def _data_capture(percent: int | None):
    from critic.sagemaker.capture import DataCapture

    return None if percent is None else DataCapture(percent)


def _release(
    specs, endpoint, role, bucket, instance_type, instance_count, image, region, wait,
    traffic, options: ReleaseOptions, limits: dict, capture,
) -> None:  # fmt: skip
    """Run an update and print it; exit 1 when SageMaker rolled it back."""
    from critic.sagemaker import update_endpoint

    alarms = AlarmLimits(**given(ALARM_OPTIONS, limits)) if options.rollback_alarms else None
    if alarms is None and any(value is not None for value in limits.values()):
        raise CriticError("the alarm limits need --rollback-alarms")
    with tempfile.TemporaryDirectory(prefix="critic-deploy-") as scratch:
        release = update_endpoint(
            packaged_variants(specs, Path(scratch)),
            endpoint,
            role,
            bucket,
            instance_type=instance_type,
            instance_count=instance_count,
            image_uri=image,
            region=region,
            wait=wait,
            log=typer.echo,
            traffic=traffic,
            alarms=alarms,
            data_capture=capture,
        )
    echo_json(release.to_dict())
    if release.status == "RolledBack":
        raise typer.Exit(1)


@sagemaker_app.command()
def register(
    artifact: Annotated[
        Path,
        typer.Argument(help="A model.tar.gz critic packaged, or a bundle folder (packaged here)."),
    ],
    group: Annotated[
        str,
        typer.Option(help="Model package group: made when missing; each register adds a version."),
    ] = ...,  # type: ignore[assignment]
    bucket: BucketOption = ...,  # type: ignore[assignment]
    approval: Annotated[
        str,
        typer.Option(help="The new version's approval: PendingManualApproval or Approved."),
    ] = "PendingManualApproval",
    description: Annotated[
        str | None,
        typer.Option(help="The version's description (default: the model and its test figures)."),
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="Instance type whose image (CPU or GPU) the container names.")
    ] = ENDPOINT_INSTANCE_TYPE,
    image: ImageOption = None,
    region: RegionOption = None,
) -> None:
    """Register a model in SageMaker's Model Registry: the next version of a model package group,
    with the same container critic sagemaker deploy creates, and the bundle's recorded figures
    (test accuracy, ECE, ...) as its metrics and metadata.

    A version starts PendingManualApproval unless --approval Approved; critic sagemaker approve
    ARN approves it, and critic sagemaker deploy --model-package ARN serves it once approved."""
    from critic.sagemaker import register_model
    from critic.serving.variants import VariantSpec

    with tempfile.TemporaryDirectory(prefix="critic-register-") as scratch:
        (packaged,) = packaged_variants([VariantSpec("register", artifact)], Path(scratch))
        version = register_model(
            packaged.bundle,
            group,
            bucket,
            approval=approval,
            description=description,
            instance_type=instance_type,
            image_uri=image,
            region=region,
            log=typer.echo,
        )
    echo_json(version.to_dict())


@sagemaker_app.command()
def approve(
    arn: Annotated[str, typer.Argument(help="The version's model package ARN.")],
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject the version instead of approving it.")
    ] = False,
    note: Annotated[
        str | None, typer.Option(help="Why (the version's ApprovalDescription).")
    ] = None,
    region: RegionOption = None,
) -> None:
    """Approve a version of the Model Registry (or --reject it): only an Approved version is
    deployed by critic sagemaker deploy --model-package."""
    from critic.sagemaker import approve_model

    version = approve_model(
        arn, status="Rejected" if reject else "Approved", note=note, region=region, log=typer.echo
    )
    echo_json(version.to_dict())


@sagemaker_app.command()
def versions(
    group: Annotated[str, typer.Argument(help="Model package group.")],
    region: RegionOption = None,
) -> None:
    """List the versions of a model package group, oldest first: each one's ARN, approval and
    recorded figures, one JSON object a line."""
    from critic.sagemaker import list_model_versions

    for version in list_model_versions(group, region):
        echo_json(version.to_dict())


@sagemaker_app.command()
def capture(
    endpoint: EndpointArgument,
    to: Annotated[
        Path, typer.Option(help="Folder to copy the capture into (ENDPOINT/VARIANT/yyyy/...).")
    ] = ...,  # type: ignore[assignment]
    hours: Annotated[
        float | None, typer.Option(help="Only the files of the last HOURS hours.")
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="What the endpoint's latest shadow test stored, both variants."
        ),
    ] = False,
    region: RegionOption = None,
) -> None:
    """Bring down what a SageMaker endpoint captured (deployed with --data-capture), for
    critic monitor FOLDER --baseline BUNDLE (and --ground-truth). Files already there are not
    fetched again."""
    from critic.sagemaker.capture import download_capture

    destination = None
    if shadow:
        from critic.sagemaker import describe_shadow_test

        test = describe_shadow_test(endpoint, region)
        if test is None or not test.data_destination:
            raise CriticError(f"endpoint {endpoint} has had no shadow test that stores its data")
        destination = test.data_destination
    fetched = download_capture(
        endpoint, to, hours=hours, destination=destination, region=region, log=typer.echo
    )
    echo_json(
        {
            "endpoint": endpoint,
            "source": fetched.source,
            "folder": str(to),
            "files": len(fetched.files),
            "unchanged": fetched.unchanged,
            "bytes": fetched.bytes,
        }
    )


def _scaling_limits(minimum: int | None, maximum: int | None, target: float | None):
    """The autoscaling asked for on the command line: None when none of it is."""
    from critic.sagemaker import ScalingLimits

    if minimum is None and maximum is None and target is None:
        return None
    if maximum is None or target is None:
        raise CriticError(
            "autoscaling needs --max-instances and --target-invocations (and optionally "
            "--min-instances, default 1)"
        )
    return ScalingLimits(1 if minimum is None else minimum, maximum, target)


@sagemaker_app.command()
def autoscale(
    endpoint: EndpointArgument,
    min_instances: Annotated[
        int | None, typer.Option("--min", help="Fewest instances per variant (default 1).")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max", help="Most instances per variant.")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Invocations per instance per minute to hold."),
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Remove the autoscaling; the instances stay as they are.")
    ] = False,
    region: RegionOption = None,
) -> None:
    """Set, show or remove the autoscaling of every variant of a SageMaker endpoint.

    With --max and --target: target tracking on SageMakerVariantInvocationsPerInstance between
    --min and --max instances. With neither: print the present settings. --off removes them.
    """
    from critic.sagemaker import describe_autoscaling, remove_autoscaling, set_autoscaling

    limits = _scaling_limits(min_instances, max_instances, target)
    if off and limits is not None:
        raise CriticError("--off removes the autoscaling: give it without --min, --max, --target")
    if off:
        removed = remove_autoscaling(endpoint, region, log=typer.echo)
        echo_json({"endpoint": endpoint, "removed": removed})
        return
    if limits is None:
        scaling = describe_autoscaling(endpoint, region)
    else:
        scaling = set_autoscaling(endpoint, limits, region, log=typer.echo)
    echo_json({"endpoint": endpoint, "autoscaling": [entry.to_dict() for entry in scaling]})


@sagemaker_app.command()
def invoke(
    endpoint: EndpointArgument,
    reviews: ReviewsArgument = None,
    variant: Annotated[str | None, typer.Option(help="Send to this production variant.")] = None,
    region: RegionOption = None,
) -> None:
    """Call a SageMaker endpoint (boto3's invoke_endpoint) and print its answer as JSON.

    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080 sends the call to critic serve.
    """
    from critic.sagemaker import invoke as invoke_endpoint

    texts = reviews_or_stdin(reviews)
    result = invoke_endpoint(
        endpoint, texts if len(texts) > 1 else texts[0], target_variant=variant, region=region
    )
    answer = result.answer if isinstance(result.answer, dict) else {"answer": result.answer}
    echo_json({**answer, "variant": result.variant})


@sagemaker_app.command("transform")
def sagemaker_transform(
    model: Annotated[
        str,
        typer.Argument(
            help="A model critic sagemaker deploy made (ENDPOINT-VARIANT), or an endpoint "
            "whose variant's model to use."
        ),
    ],
    input_uri: Annotated[
        str, typer.Option("--input", help="s3://BUCKET/PREFIX: every object under it is read.")
    ] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option(help="s3://BUCKET/PREFIX for the .out files.")] = ...,  # type: ignore[assignment]
    content_type: Annotated[
        str,
        typer.Option(
            help="application/jsonlines, text/csv (one quoted review a line, no header) or "
            "text/plain (one review a line, sent one a request)."
        ),
    ] = "application/jsonlines",
    join_input: Annotated[
        bool, typer.Option(help="Each JSON line comes back with its answer in SageMakerOutput.")
    ] = False,
    variant: Annotated[
        str | None, typer.Option(help="The endpoint's variant whose model to use.")
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="Instance type of the job.")
    ] = TRANSFORM_INSTANCE_TYPE,
    instance_count: Annotated[int, typer.Option(help="Instances of the job.")] = 1,
    job_name: Annotated[
        str | None, typer.Option(help="Job name (default: critic-transform-TIME).")
    ] = None,
    region: RegionOption = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job to end.")] = True,
) -> None:
    """critic transform as a SageMaker Batch Transform job: every line of every object under
    --input gets one answer line in OUTPUT/NAME.out, on a model critic sagemaker deploy made.
    The job is billed per instance while it runs and stops by itself."""
    from critic.sagemaker import run_transform_job

    job = run_transform_job(
        model,
        input_uri,
        output,
        content_type=content_type,
        join_input=join_input,
        variant=variant,
        instance_type=instance_type,
        instance_count=instance_count,
        job_name=job_name,
        region=region,
        wait=wait,
        log=typer.echo,
    )
    echo_json(
        {
            "transform_job": job.name,
            "model": job.model_name,
            "status": job.status,
            "output": job.output_uri,
        }
    )


@sagemaker_app.command("update-weights")
def update_weights(
    endpoint: EndpointArgument,
    weights: Annotated[list[str], typer.Argument(help="VARIANT=WEIGHT ...")],
    region: RegionOption = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until the endpoint has applied the weights.")
    ] = True,
) -> None:
    """Shift traffic between a SageMaker endpoint's variants without redeploying."""
    from critic.sagemaker import update_weights as update_endpoint_weights
    from critic.serving.variants import parse_weights

    changed = update_endpoint_weights(
        endpoint, parse_weights(weights), region, wait=wait, log=typer.echo
    )
    echo_json({"endpoint": endpoint, "weights": changed})


@sagemaker_app.command("delete-endpoint")
def delete_endpoint(
    endpoint: EndpointArgument,
    region: RegionOption = None,
) -> None:
    """Delete a SageMaker endpoint, its endpoint config and its models (the S3 artifacts stay)."""
    from critic.sagemaker import delete_endpoint as delete

    deleted = delete(endpoint, region, log=typer.echo)
    echo_json(
        {
            "deleted_endpoint": deleted.endpoint_name,
            "endpoint_config": deleted.endpoint_config_name,
            "models": deleted.models,
            "alarms": deleted.alarms,
        }
    )


@sagemaker_app.command()
def shadow(
    endpoint: EndpointArgument,
    artifact: Annotated[
        Path | None,
        typer.Argument(
            help="The model.tar.gz (or a bundle folder, packaged on the way) to run as the shadow."
        ),
    ] = None,
    role: Annotated[
        str | None, typer.Option(help="IAM role ARN SageMaker assumes to run the test.")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(help="S3 bucket for the artifact and the captured answers.")
    ] = None,
    variant: Annotated[str, typer.Option(help="Name of the shadow variant.")] = "shadow",
    percent: Annotated[
        int, typer.Option(help="Share of the source's requests the shadow also answers (1-100).")
    ] = 100,
    days: Annotated[float, typer.Option(help="How long the test runs, at most 30 days.")] = 7.0,
    instance_type: Annotated[
        str | None, typer.Option(help="The shadow's instance type (default: the source's).")
    ] = None,
    instance_count: Annotated[
        int | None, typer.Option(help="The shadow's instances (default: the source's).")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="Serving image URI (default: SageMaker's PyTorch image).")
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="End the running shadow test.")] = False,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote", help="With --stop: the shadow replaces the source as production variant."
        ),
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Print the endpoint's latest shadow test.")
    ] = False,
    region: RegionOption = None,
) -> None:
    """Shadow-test a model on a SageMaker endpoint's live traffic: it answers a copy of the
    requests to the endpoint's production variant, and only the production answers go back.

    Both answers are captured to s3://BUCKET/critic/ENDPOINT/shadow-capture. The shadow's
    instances are billed while the test runs; end it with --stop (--promote to make the shadow
    the production variant), or see it with --status; critic sagemaker capture ENDPOINT
    --shadow brings them down for critic monitor."""
    from critic.sagemaker import describe_shadow_test, start_shadow_test, stop_shadow_test
    from critic.serving.variants import VariantSpec

    if stop and status:
        raise CriticError("give --stop or --status, not both")
    if promote and not stop:
        raise CriticError("--promote goes with --stop: it promotes the shadow as the test ends")
    if artifact is not None and (stop or status):
        raise CriticError(
            f"{'--stop' if stop else '--status'} takes no ARTIFACT: the artifact starts a test"
        )
    if status:
        found = describe_shadow_test(endpoint, region)
        echo_json(found.to_dict() if found else {"endpoint": endpoint, "shadow_test": None})
        return
    if stop:
        echo_json(
            stop_shadow_test(endpoint, promote=promote, region=region, log=typer.echo).to_dict()
        )
        return
    if artifact is None:
        raise CriticError(
            "give an ARTIFACT to start a shadow test (with --role and --bucket), --stop to end "
            "one, or --status to see it"
        )
    if role is None or bucket is None:
        raise CriticError("starting a shadow test needs --role and --bucket")
    with tempfile.TemporaryDirectory(prefix="critic-shadow-") as scratch:
        (packaged,) = packaged_variants([VariantSpec(variant, artifact)], Path(scratch))
        started = start_shadow_test(
            endpoint,
            packaged.bundle,
            role,
            bucket,
            variant=variant,
            percent=percent,
            duration_days=days,
            instance_type=instance_type,
            instance_count=instance_count,
            image_uri=image,
            region=region,
            log=typer.echo,
        )
    echo_json(started.to_dict())


feedback_table_app = typer.Typer(
    help="The DynamoDB table that keeps the feedback and online counts of every server and the "
    "Lambda (--feedback-db dynamodb://TABLE).",
    no_args_is_help=True,
)
sagemaker_app.add_typer(feedback_table_app, name="feedback-table")
TableArgument = Annotated[str, typer.Argument(help="Table name (or dynamodb://TABLE).")]


def _table_name(table: str) -> str:
    from critic.serving.ab.dynamodb import SCHEME, parse_url

    return parse_url(table if table.startswith(SCHEME) else SCHEME + table)[0]


@feedback_table_app.command("create")
def feedback_table_create(table: TableArgument, region: RegionOption = None) -> None:
    """Create the feedback table (on-demand capacity: billed per request, nothing when idle)
    and wait until it is ACTIVE; then give --feedback-db dynamodb://TABLE to critic serve,
    critic web and the Lambda (CRITIC_FEEDBACK_TABLE)."""
    from critic.serving.ab.dynamodb import create_table

    name = _table_name(table)
    described = create_table(name, region)
    typer.echo(f"feedback-table: {name} is {described.get('TableStatus', 'ACTIVE')}")
    echo_json({"table": name, "feedback_db": f"dynamodb://{name}", "arn": described["TableArn"]})


@feedback_table_app.command("delete")
def feedback_table_delete(
    table: TableArgument,
    region: RegionOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete without asking: every vote goes with it.")
    ] = False,
) -> None:
    """Delete the feedback table, and with it every vote, answer key and count in it."""
    from critic.serving.ab.dynamodb import delete_table

    name = _table_name(table)
    if not yes and not typer.confirm(f"delete table {name} and every vote in it?"):
        raise typer.Exit(1)
    delete_table(name, region)
    echo_json({"deleted_table": name})
