"""Commands for Amazon SageMaker: package a model artifact, and the ``critic sagemaker`` group
(train as a job, deploy, scale, invoke, transform, shift traffic, delete). What SageMaker's
contract asks (hyper-parameters, artifacts, instance types) lives in :mod:`critic.sagemaker`;
these commands parse, call and print."""

from __future__ import annotations

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
from critic.sagemaker.endpoints import INSTANCE_TYPE as ENDPOINT_INSTANCE_TYPE
from critic.sagemaker.training import TrainingJobOptions
from critic.sagemaker.transform import INSTANCE_TYPE as TRANSFORM_INSTANCE_TYPE

sagemaker_app = typer.Typer(
    help="Amazon SageMaker: train as a job, deploy an endpoint, scale it, invoke it, shift its "
    "traffic, delete it.",
    no_args_is_help=True,
)
app.add_typer(sagemaker_app, name="sagemaker")
JOB_OPTIONS = options_of(TrainingJobOptions)


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
def deploy(
    artifact: Annotated[
        Path | None,
        typer.Argument(
            help="A model.tar.gz (or a bundle folder, packaged on the way) for one variant, AllTraffic."
        ),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name.")] = ...,  # type: ignore[assignment]
    role: Annotated[str, typer.Option(help="IAM execution role ARN for the models.")] = ...,  # type: ignore[assignment]
    bucket: Annotated[str, typer.Option(help="S3 bucket to upload the artifacts to.")] = ...,  # type: ignore[assignment]
    variant: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ARTIFACT(:WEIGHT), repeatable: production variants."),
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="Instance type of every variant.")
    ] = ENDPOINT_INSTANCE_TYPE,
    instance_count: Annotated[int, typer.Option(help="Instances per variant.")] = 1,
    image: Annotated[
        str | None, typer.Option(help="Serving image URI (default: SageMaker's PyTorch image).")
    ] = None,
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
) -> None:
    """Deploy to Amazon SageMaker: upload, create the models, an endpoint config with production
    variants and weights, and the endpoint. Delete it with critic sagemaker delete-endpoint when
    done: a running endpoint is billed by the hour.

    With --max-instances and --target-invocations every variant scales between
    --min-instances and --max-instances (Application Auto Scaling target tracking); change it
    later with critic sagemaker autoscale."""
    import tempfile

    from critic.sagemaker import deploy as deploy_endpoint
    from critic.sagemaker.endpoints import packaged_variants
    from critic.serving.variants import variant_specs

    limits = _scaling_limits(min_instances, max_instances, target_invocations)
    specs = variant_specs(artifact, variant)  # repeated names fail before anything is packaged
    if not specs:
        raise CriticError(
            "nothing to deploy: give a model.tar.gz, or --variant NAME=ARTIFACT[:WEIGHT]"
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
            autoscaling=limits,
        )
    answer = {"endpoint": deployment.endpoint_name, "status": deployment.status}
    if deployment.autoscaling:
        answer["autoscaling"] = [entry.to_dict() for entry in deployment.autoscaling]
    echo_json(answer)


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
        }
    )
