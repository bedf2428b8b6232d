"""Models: one registry; every model maps (token_ids, lengths) to (batch,) logits."""

from critic.models import rnn  # noqa: F401  (registers its architectures)
from critic.models.registry import build_model, check_model_name, model_names, register

__all__ = ["build_model", "check_model_name", "model_names", "register"]
