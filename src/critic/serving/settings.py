"""Settings of the endpoint, from the command line or the environment (as SageMaker passes them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from critic.config import parse_value, setting, setting_types
from critic.errors import CriticError
from critic.system import available_cores

ENV_PREFIX = "CRITIC_"


@dataclass(frozen=True)
class ServerSettings:
    """How the endpoint runs. Each field is a ``critic serve --option`` and a ``CRITIC_<NAME>``
    environment variable; its help is declared here, once (:func:`critic.config.setting`)."""

    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(8080, "Port (8080, as SageMaker).")
    workers: int = setting(
        0,
        "Worker processes on the one port, each with every variant loaded and its share of "
        "the cores; 0: one per core this process may use, as SageMaker's own containers start "
        "one per vCPU (it measured best under load; docs/benchmarks.md).",
    )
    max_reviews: int = setting(1000, "Most reviews in one request; more is a 413.")
    max_batch: int = setting(64, "Most reviews in one forward pass of the micro-batcher.")
    batch_wait_ms: float = setting(
        0.0,
        "How long the first request waits for others to share its forward pass, in ms; "
        "0: never wait, requests that arrive while the model is busy share the next pass.",
    )
    max_queue: int | None = setting(
        None,
        "Most reviews queued per variant before new requests get 503 + Retry-After "
        "(default: what the variant answers in --queue-seconds at the pace measured at "
        "start-up).",
    )
    queue_seconds: float = setting(
        1.0, "How much work, in seconds of the model's measured pace, a variant's queue holds."
    )
    timeout_s: float = setting(
        60.0, "A request not answered within this many seconds gets a 504 (SageMaker: 60)."
    )
    graceful_timeout_s: float = setting(
        25.0,
        "On SIGTERM, how long the requests in flight may take to finish before the server "
        "exits (SageMaker sends SIGKILL 30 s after SIGTERM).",
    )
    admin_token: str | None = setting(
        None, "Bearer token for POST /admin/weights; without one the weights are fixed."
    )
    endpoint_name: str = setting("critic", "Name answered on /endpoints/NAME/invocations.")
    backend: str = setting(
        "auto",
        "What runs the neural models: torch (eager PyTorch), onnx (ONNX Runtime, exported at "
        "start-up; pip install 'critic[onnx]') or auto (lstm, gru and attention are timed on "
        "both as they load, and each batch runs on the faster at its size; one line says "
        "which; torch where onnxruntime is not installed).",
    )
    # The environment only: the endpoint's models run on the CPU unless told otherwise.
    device: str = setting("cpu", "Device the models run on.", option=False)
    # Tests fix the traffic split with it; None draws from the system.
    seed: int | None = setting(None, "Seed of the traffic split.", option=False)
    release_alias: str | None = setting(
        "champion",
        "For a variant served from the model registry (models:/...): the alias moved to its "
        "version when it is released (a shadow promoted, a rollout completed), so that the "
        "registry says what serves; 'off' moves none.",
    )
    feedback_db: str | None = setting(
        None,
        "Where the page's feedback and the online counts are kept: a SQLite file (default: "
        "feedback.sqlite beside the first variant's bundle), dynamodb://TABLE for servers on "
        "several machines sharing one table, or 'off'.",
    )
    # Shadow variants and data capture (critic.serving.sidecar.shadow, critic.serving.sidecar.capture).
    shadow_queue: int = setting(
        16,
        "Most reviews queued per shadow variant; copies past it are dropped (and counted), "
        "never waited for.",
    )
    shadow_duty: float = setting(
        0.25,
        "Most share of the time a shadow variant's model computes (it rests after each pass): "
        "the bound on the CPU it takes from the live variants; 1 lets it run flat out.",
    )
    capture_dir: str | None = setting(
        None,
        "Capture requests and answers to this folder as JSON lines in SageMaker's "
        "data-capture shape (hourly files, DIR/ENDPOINT/VARIANT/yyyy/mm/dd/hh/); off by default.",
    )
    capture_percent: float = setting(100.0, "Share of the requests captured, in percent.")
    capture_max_mb: float = setting(
        1024.0, "Disk bound of the capture folder, in MB: past it the oldest files are deleted."
    )
    capture_text: bool = setting(
        True, "Keep the review text in captured requests (off: only each review's word count)."
    )

    auto_weights_s: float = setting(
        0.0,
        "Every this many seconds, shift the traffic toward the variant the feedback favours "
        "(Thompson sampling on the votes), each keeping at least --auto-weights-floor of it; "
        "0: off, the weights change only through /admin/weights (which it overrides when on).",
    )
    auto_weights_floor: float = setting(
        0.1, "Least share of the traffic each variant keeps when --auto-weights-s is on."
    )

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise CriticError(f"port must be 1-65535, got {self.port}")
        if self.max_reviews < 1 or self.max_batch < 1:
            raise CriticError("max_reviews and max_batch must be at least 1")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise CriticError(f"batch_wait_ms must lie in 0-1000, got {self.batch_wait_ms}")
        if not 0 <= self.workers <= 64:
            raise CriticError(f"workers must lie in 0-64 (0: one per core), got {self.workers}")
        if self.workers == 0:
            object.__setattr__(self, "workers", min(available_cores(), 64))
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
        if self.backend not in ("torch", "onnx", "auto"):
            raise CriticError(f"backend must be torch, onnx or auto, got {self.backend!r}")
        if self.shadow_queue < 1:
            raise CriticError(f"shadow_queue must be at least 1, got {self.shadow_queue}")
        if not 0 < self.shadow_duty <= 1:
            raise CriticError(f"shadow_duty must lie in (0, 1], got {self.shadow_duty}")
        if not 0 < self.capture_percent <= 100:
            raise CriticError(f"capture_percent must lie in (0, 100], got {self.capture_percent}")
        if not self.capture_max_mb > 0:
            raise CriticError(f"capture_max_mb must be above 0, got {self.capture_max_mb}")
        if not 0 <= self.auto_weights_s <= 86400:
            raise CriticError(f"auto_weights_s must lie in [0, 86400], got {self.auto_weights_s}")
        if not 0 <= self.auto_weights_floor <= 0.5:
            raise CriticError(
                f"auto_weights_floor must lie in [0, 0.5], got {self.auto_weights_floor}"
            )
        if self.admin_token is not None and len(self.admin_token) < 8:
            raise CriticError("the admin token must be at least 8 characters")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> ServerSettings:
        """``CRITIC_PORT=9000`` etc.; explicit ``overrides`` (the command line) win.

        SageMaker's own ``SAGEMAKER_BIND_TO_PORT`` is honoured too.
        """
        environ = os.environ if environ is None else environ
        kinds = setting_types(cls)
        values: dict = {}
        for name, kind in kinds.items():
            variable = ENV_PREFIX + name.upper()
            raw = environ.get(variable)
            if name == "port" and raw is None:
                variable, raw = "SAGEMAKER_BIND_TO_PORT", environ.get("SAGEMAKER_BIND_TO_PORT")
            if raw is not None:
                values[name] = parse_value(raw, kind, variable)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
