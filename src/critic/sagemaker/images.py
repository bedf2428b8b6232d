"""Which SageMaker PyTorch framework image runs critic: the one table to edit.

AWS publishes its Deep Learning Containers in one ECR registry per region, mostly the account
763104351884 (``REGISTRY_ACCOUNTS`` lists the exceptions). critic uses the *SageMaker* flavour
of the PyTorch images (tags ending in ``-sagemaker``): the inference image runs
``code/inference.py`` from the model.tar.gz through the SageMaker inference toolkit, the training
image runs an entry script from an uploaded ``sourcedir.tar.gz`` through the training toolkit.

The default is PyTorch 2.6.0 on Python 3.12: when this was written, the newest release with
SageMaker inference images as well as training images, for CPU and GPU. critic's model code
needs nothing newer (the bundle is plain safetensors and JSON). To move to a newer release, change ``PYTORCH_VERSION`` and the four tags
below after checking them in
https://github.com/aws/deep-learning-containers/blob/master/available_images.md ; to use any other
image (your own, or a pinned ``-v1.NN`` tag), pass ``image_uri`` instead.
"""

from __future__ import annotations

import re
from typing import Literal

from critic.errors import CriticError

Scope = Literal["inference", "training"]

PYTORCH_VERSION = "2.6.0"
IMAGE_TAGS: dict[tuple[str, str], str] = {
    ("inference", "cpu"): "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
    ("inference", "gpu"): "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker",
    ("training", "cpu"): "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
    ("training", "gpu"): "2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker",
}
REPOSITORIES: dict[str, str] = {"inference": "pytorch-inference", "training": "pytorch-training"}
# Where SageMaker's PyTorch inference container finds the handler inside model.tar.gz.
INFERENCE_PROGRAM = "inference.py"
INFERENCE_CODE_DIR = "/opt/ml/model/code"

DEFAULT_ACCOUNT = "763104351884"
REGISTRY_ACCOUNTS: dict[str, str] = {
    **{
        region: DEFAULT_ACCOUNT
        for region in (
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "sa-east-1",
            "eu-central-1",
            "eu-north-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
        )
    },
    # Regions opened later, each with a registry account of its own.
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}

# Families such as c7g, m6gd or r7gn are Graviton (arm64); the framework images above are x86.
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*$")


def processor_for(instance_type: str) -> Literal["cpu", "gpu"]:
    """``"gpu"`` for the P and G families (ml.g4dn.xlarge, ml.p3.2xlarge), else ``"cpu"``."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) == 3 and parts[0] == "ml" else ""
    if not family:
        raise CriticError(f"{instance_type!r} is not a SageMaker instance type (e.g. ml.m5.large)")
    if family.startswith(("inf", "trn")):
        raise CriticError(
            f"{instance_type} is an AWS Inferentia/Trainium instance, which needs a Neuron image "
            "and a compiled model: pass image_uri, or use a CPU (ml.m5) or GPU (ml.g4dn) instance"
        )
    if _GRAVITON.match(family):
        raise CriticError(
            f"{instance_type} is a Graviton (arm64) instance and the default images are x86: "
            "pass an arm64 image_uri, or use an x86 instance (ml.m5, ml.c5)"
        )
    return "gpu" if family.startswith(("p", "g")) else "cpu"


def framework_image_uri(scope: Scope, region: str, instance_type: str) -> str:
    """The SageMaker PyTorch image for ``scope`` ("inference" or "training") in ``region``, CPU or
    GPU as ``instance_type`` needs, e.g.
    ``763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker``.
    """
    if scope not in REPOSITORIES:
        raise ValueError(f"scope must be inference or training, not {scope!r}")
    account = REGISTRY_ACCOUNTS.get(region)
    if account is None:
        raise CriticError(
            f"critic does not know the PyTorch image registry of region {region}: pass image_uri "
            f"(see https://github.com/aws/deep-learning-containers/blob/master/available_images.md)"
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    tag = IMAGE_TAGS[(scope, processor_for(instance_type))]
    return f"{account}.dkr.ecr.{region}.{domain}/{REPOSITORIES[scope]}:{tag}"


def model_environment(region: str) -> dict[str, str]:
    """The container environment of every critic model: run code/inference.py from the model."""
    return {
        "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": INFERENCE_CODE_DIR,
        "SAGEMAKER_REGION": region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",  # logging.INFO
    }


def check_image_uri(image_uri: object) -> str:
    """A user's image URI: one word, with a repository and a tag or digest."""
    if (
        not isinstance(image_uri, str)
        or not image_uri
        or any(c.isspace() for c in image_uri)
        or "/" not in image_uri
    ):
        raise CriticError(
            f"{image_uri!r} is not a container image URI "
            "(e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:1.0)"
        )
    return image_uri
