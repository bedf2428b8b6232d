"""critic.sagemaker.images: the SageMaker PyTorch image for a region and an instance type."""

from __future__ import annotations

import pytest

from critic.errors import CriticError
from critic.sagemaker import framework_image_uri
from support.aws import CPU_INFERENCE_IMAGE, CPU_TRAINING_IMAGE, GPU_INFERENCE_IMAGE


@pytest.mark.parametrize(
    ("scope", "region", "instance_type", "expected"),
    [
        ("inference", "us-east-1", "ml.m5.large", CPU_INFERENCE_IMAGE),
        ("inference", "us-east-1", "ml.p3.2xlarge", GPU_INFERENCE_IMAGE),
        ("training", "us-east-1", "ml.c5.2xlarge", CPU_TRAINING_IMAGE),
        (
            "training",
            "eu-west-1",
            "ml.g5.xlarge",
            "763104351884.dkr.ecr.eu-west-1.amazonaws.com/"
            "pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker",
        ),
        (
            "inference",
            "eu-south-1",
            "ml.m5.large",
            "692866216735.dkr.ecr.eu-south-1.amazonaws.com/"
            "pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        ),
        (
            "inference",
            "cn-north-1",
            "ml.m5.large",
            "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/"
            "pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        ),
    ],
)
def test_the_framework_image_follows_the_region_and_the_instance_type(
    scope, region, instance_type, expected
):
    assert framework_image_uri(scope, region, instance_type) == expected


@pytest.mark.parametrize(
    ("region", "instance_type", "message"),
    [
        ("us-east-1", "ml.inf2.xlarge", "Neuron image"),
        ("us-east-1", "ml.trn1.2xlarge", "Neuron image"),
        ("us-east-1", "ml.c7g.large", "Graviton"),
        ("xx-nowhere-1", "ml.m5.large", "pass image_uri"),
    ],
)
def test_an_image_the_defaults_cannot_provide_is_a_clear_error(region, instance_type, message):
    with pytest.raises(CriticError, match=message):
        framework_image_uri("inference", region, instance_type)
