"""Models: one registry; every model maps (token_ids, lengths) to (batch,) logits."""

from critic.models import encoder, hybrid, nbsvm, ngrams, rnn  # noqa: F401  (register their architectures)
from critic.models.registry import (
    NBSVM_KIND,
    NEURAL,
    build_model,
    check_model_config,
    check_model_name,
    model_kind,
    model_names,
    recipe,
    register,
    run_config,
)

__all__ = [
    "NBSVM_KIND",
    "NEURAL",
    "build_model",
    "check_model_config",
    "check_model_name",
    "model_kind",
    "model_names",
    "recipe",
    "register",
    "run_config",
]
