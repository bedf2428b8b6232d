"""Models: one registry; every model maps (token_ids, lengths) to (batch,) logits."""

from critic.models import hybrid, ngrams, rnn  # noqa: F401  (register their architectures)
from critic.models.registry import (
    build_model,
    check_model_name,
    model_names,
    recipe,
    register,
    run_config,
)

__all__ = ["build_model", "check_model_name", "model_names", "recipe", "register", "run_config"]
