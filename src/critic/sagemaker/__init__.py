"""Amazon SageMaker from critic: register models in the Model Registry and approve their
versions, deploy endpoints, invoke them, shift traffic between their variants, shadow-test a
new model on their traffic, delete them, and run ``critic train`` as a training job.

    endpoints.py   deploy, update_endpoint (guarded releases), update_weights, delete_endpoint
    deployment.py  the traffic shift of a release and the alarms that roll it back
    capture.py     data capture: on at deploy, brought down for critic monitor
    autoscaling.py set_autoscaling, describe_autoscaling, remove_autoscaling, suggested_target
    shadow_tests.py start_shadow_test, stop_shadow_test, describe_shadow_test: a model answering
                   a copy of an endpoint's traffic, unseen by callers
    runtime.py     invoke
    training.py    submit_training_job (and the sourcedir.tar.gz it uploads)
    transform.py   run_transform_job: Batch Transform over S3 on a deployed model
    model_registry.py register_model, approve_model, list_model_versions: versions of a model
                   in a model package group, approved before deploy serves them
    images.py      the SageMaker PyTorch image for a region and instance type
    aws.py         boto3 sessions, clients, and AWS errors as one-line CriticErrors
    checks.py      names, ARNs and instance types, checked before any AWS call

boto3 is optional (``pip install 'critic[aws]'``): importing this package does not import it;
calling a function without it installed is a CriticError that says how to install it.
"""

from critic.sagemaker.autoscaling import (
    ScalingLimits,
    VariantScaling,
    describe_autoscaling,
    remove_autoscaling,
    set_autoscaling,
    suggested_target,
)
from critic.sagemaker.endpoints import (
    DeletedEndpoint,
    Deployment,
    Release,
    delete_endpoint,
    deploy,
    update_endpoint,
    update_weights,
)
from critic.sagemaker.images import framework_image_uri
from critic.sagemaker.model_registry import (
    ModelPackageVariant,
    ModelVersion,
    approve_model,
    describe_model_version,
    list_model_versions,
    register_model,
)
from critic.sagemaker.runtime import InvokeResult, invoke
from critic.sagemaker.shadow_tests import (
    ShadowTest,
    describe_shadow_test,
    start_shadow_test,
    stop_shadow_test,
)
from critic.sagemaker.training import TrainingJob, submit_training_job
from critic.sagemaker.transform import TransformJob, run_transform_job
from critic.serving.variants import VariantSpec  # one class for serve and deploy

__all__ = [
    "DeletedEndpoint",
    "Deployment",
    "InvokeResult",
    "ModelPackageVariant",
    "ModelVersion",
    "Release",
    "ScalingLimits",
    "ShadowTest",
    "TrainingJob",
    "TransformJob",
    "VariantScaling",
    "VariantSpec",
    "approve_model",
    "delete_endpoint",
    "deploy",
    "describe_autoscaling",
    "describe_model_version",
    "describe_shadow_test",
    "framework_image_uri",
    "invoke",
    "list_model_versions",
    "register_model",
    "remove_autoscaling",
    "run_transform_job",
    "set_autoscaling",
    "start_shadow_test",
    "stop_shadow_test",
    "submit_training_job",
    "suggested_target",
    "update_endpoint",
    "update_weights",
]
