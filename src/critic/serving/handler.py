"""The four functions SageMaker's PyTorch serving container calls, backed by critic.

``critic package`` copies critic's own source next to a two-line ``code/inference.py`` that
re-exports these, so a model.tar.gz answers inside SageMaker exactly as ``critic serve`` does
here: same content types, same predictions, same errors.
"""

from __future__ import annotations

import os

from critic.inference.predictor import Predictor
from critic.serving.codec import (
    ClientError,
    decode_reviews,
    encode_predictions,
    negotiate,
    wants_explanation,
)
from critic.serving.settings import ServerSettings


def _toolkit_error(error: ClientError) -> Exception:
    """Turn a client mistake into the toolkit's own error type, so it answers with a 4xx."""
    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError
    except ImportError:  # outside the container: the ClientError itself carries the status
        return error
    return GenericInferenceToolkitError(error.status, error.message)


def model_fn(model_dir: str) -> Predictor:
    """Load the bundle that SageMaker unpacked into ``model_dir`` (weights on the CPU or GPU)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # CRITIC_BACKEND=auto|onnx on the model (its environment) runs lstm, gru and attention on
    # ONNX Runtime when the container has it; the default keeps the container's PyTorch.
    backend = os.environ.get("CRITIC_BACKEND", "torch") if device == "cpu" else "torch"
    return Predictor.load(model_dir, device=device, backend=backend)


def _custom_attributes(context) -> str | None:
    """The request's X-Amzn-SageMaker-Custom-Attributes header, from the model server's context."""
    try:
        headers = context.request_processor[0].get_request_properties()
    except (AttributeError, IndexError, TypeError):
        return None
    for name, value in headers.items():
        if name.lower() == "x-amzn-sagemaker-custom-attributes":
            return value.decode() if isinstance(value, bytes) else value
    return None


def _max_reviews() -> int:
    """Most reviews in one request: CRITIC_MAX_REVIEWS, as critic serve reads it. A Batch
    Transform job (critic sagemaker transform) raises it, so that a MultiRecord request --
    as many lines as fit in MaxPayloadInMB -- is taken whole however short its reviews."""
    return ServerSettings.from_env().max_reviews


def input_fn(input_data: bytes | str, content_type: str, context=None) -> tuple[list[str], bool]:
    """The reviews, and whether the client asked for word weights (``explain=true`` among
    the custom attributes: SageMaker passes no query string to the container)."""
    try:
        reviews = decode_reviews(input_data, content_type, _max_reviews())
        explain = wants_explanation(None, _custom_attributes(context))
    except ClientError as error:
        raise _toolkit_error(error) from None
    return reviews, explain


def predict_fn(request: tuple[list[str], bool], model: Predictor) -> list[dict]:
    reviews, explain = request
    return model.predict(reviews, explain=explain)


def output_fn(predictions: list[dict], accept: str) -> tuple[bytes, str]:
    try:
        response_type = negotiate(accept)
    except ClientError as error:
        raise _toolkit_error(error) from None
    return encode_predictions(predictions, response_type), response_type
