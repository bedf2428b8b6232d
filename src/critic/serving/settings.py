"""Settings of the endpoint, from the command line or the environment (as SageMaker passes them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from critic.config import setting
from critic.errors import CriticError

ENV_PREFIX = "CRITIC_"


@dataclass(frozen=True)
class ServerSettings:
    """How the endpoint runs. Each field is a ``critic serve --option`` and a ``CRITIC_<NAME>``
    environment variable; its help is declared here, once (:func:`critic.config.setting`)."""

    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(8080, "Port (8080, as SageMaker).")
    max_reviews: int = setting(1000, "Most reviews in one request; more is a 413.")
    max_batch: int = setting(64, "Most reviews in one forward pass of the micro-batcher.")
    batch_wait_ms: float = setting(
        5.0, "How long a request waits for others to share its forward pass, in ms."
    )
    admin_token: str | None = setting(
        None, "Bearer token for POST /admin/weights; without one the weights are fixed."
    )
    endpoint_name: str = setting("critic", "Name answered on /endpoints/NAME/invocations.")
    # The environment only: the endpoint's models run on the CPU unless told otherwise.
    device: str = setting("cpu", "Device the models run on.", option=False)
    # Tests fix the traffic split with it; None draws from the system.
    seed: int | None = setting(None, "Seed of the traffic split.", option=False)
    feedback_db: str | None = setting(
        None,
        "SQLite file for the page's feedback (default: feedback.sqlite beside the first "
        "variant's bundle; 'off' turns feedback off).",
    )

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
