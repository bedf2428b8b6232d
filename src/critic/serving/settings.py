"""Settings of the endpoint, from the command line or the environment (as SageMaker passes them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from critic.errors import CriticError

ENV_PREFIX = "CRITIC_"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_reviews: int = 1000
    """Most reviews in one request; more is a 413."""
    max_batch: int = 64
    """Most reviews in one forward pass of the micro-batcher."""
    batch_wait_ms: float = 5.0
    """How long a request waits for others to share its forward pass."""
    admin_token: str | None = None
    """Bearer token for changing weights at run time; without one the admin route is off."""
    endpoint_name: str = "critic"
    device: str = "cpu"
    seed: int | None = None
    """Seed of the traffic split (tests); None draws from the system."""
    feedback_db: str | None = None
    """SQLite file for the page's feedback; default: feedback.sqlite beside the first
    variant's bundle; "off" turns feedback off."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise CriticError(f"port must be 1-65535, got {self.port}")
        if self.max_reviews < 1 or self.max_batch < 1:
            raise CriticError("max_reviews and max_batch must be at least 1")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise CriticError(f"batch_wait_ms must lie in 0-1000, got {self.batch_wait_ms}")
        if self.admin_token is not None and len(self.admin_token) < 8:
            raise CriticError("the admin token must be at least 8 characters")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServerSettings:
        """``CRITIC_PORT=9000`` etc.; explicit ``overrides`` (the command line) win.

        SageMaker's own ``SAGEMAKER_BIND_TO_PORT`` is honoured too.
        """
        environ = os.environ if environ is None else environ
        values: dict = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if field.name == "port" and raw is None:
                raw = environ.get("SAGEMAKER_BIND_TO_PORT")
            if raw is None:
                continue
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            try:
                if kind.startswith("int"):
                    values[field.name] = int(raw)
                elif kind.startswith("float"):
                    values[field.name] = float(raw)
                else:
                    values[field.name] = raw
            except ValueError:
                raise CriticError(
                    f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a number"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
