"""Amazon SageMaker from critic: deploy endpoints, invoke them, shift traffic between their
variants, delete them, and run ``critic train`` as a training job.

    endpoints.py   deploy, update_weights, delete_endpoint
    autoscaling.py set_autoscaling, describe_autoscaling, remove_autoscaling, suggested_target
    runtime.py     invoke
    training.py    submit_training_job (and the sourcedir.tar.gz it uploads)
    transform.py   run_transform_job: Batch Transform over S3 on a deployed model
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
    delete_endpoint,
    deploy,
    update_weights,
)
from critic.sagemaker.images import framework_image_uri
from critic.sagemaker.runtime import InvokeResult, invoke
from critic.sagemaker.training import TrainingJob, submit_training_job
from critic.sagemaker.transform import TransformJob, run_transform_job
from critic.serving.variants import VariantSpec  # one class for serve and deploy

__all__ = [
    "DeletedEndpoint",
    "Deployment",
    "InvokeResult",
    "ScalingLimits",
    "TrainingJob",
    "TransformJob",
    "VariantScaling",
    "VariantSpec",
    "delete_endpoint",
    "deploy",
    "describe_autoscaling",
    "framework_image_uri",
    "invoke",
    "remove_autoscaling",
    "run_transform_job",
    "set_autoscaling",
    "submit_training_job",
    "suggested_target",
    "update_weights",
]
