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
    workers: int = 1
    """Worker processes on the one port, each with every variant loaded (see critic.endpoint.
    serve). 1 measured best on a 2-core machine (docs/benchmarks.md); SageMaker's own
    containers start one per vCPU."""
    max_reviews: int = 1000
    """Most reviews in one request; more is a 413."""
    max_batch: int = 64
    """Most reviews in one forward pass of the micro-batcher."""
    batch_wait_ms: float = 0.0
    """How long the first request waits for others to share its forward pass. 0 (the
    default): never wait; requests that arrive while the model is busy share the next pass."""
    max_queue: int | None = None
    """Most reviews queued per variant before new requests get 503 + Retry-After; default:
    what the variant answers in ``queue_seconds`` at the pace measured at start-up."""
    queue_seconds: float = 1.0
    """How much work, in seconds of the model's measured pace, a variant's queue holds."""
    timeout_s: float = 60.0
    """A request not answered within this many seconds gets a 504 (SageMaker's limit is 60)."""
    graceful_timeout_s: float = 25.0
    """On SIGTERM, how long in-flight requests may take to finish before the server exits
    (SageMaker sends SIGKILL 30 s after SIGTERM)."""
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
        if not 1 <= self.workers <= 64:
            raise CriticError(f"workers must lie in 1-64, got {self.workers}")
        if self.max_queue is not None and self.max_queue < 1:
            raise CriticError(f"max_queue must be at least 1, got {self.max_queue}")
        if not 0 < self.queue_seconds <= 600:
            raise CriticError(f"queue_seconds must lie in (0, 600], got {self.queue_seconds}")
        if not 0 < self.timeout_s <= 3600:
            raise CriticError(f"timeout_s must lie in (0, 3600], got {self.timeout_s}")
        if not 0 <= self.graceful_timeout_s <= 3600:
            raise CriticError(
                f"graceful_timeout_s must lie in [0, 3600], got {self.graceful_timeout_s}"
            )
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
