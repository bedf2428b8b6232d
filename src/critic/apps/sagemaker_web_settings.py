"""Settings of ``critic web --sagemaker-endpoint``: the page in front of a SageMaker endpoint
(critic.apps.sagemaker_web). Apart from it so that the command line can offer them without importing the
web server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from critic.config import setting
from critic.errors import CriticError
from critic.sagemaker.checks import check_name


@dataclass(frozen=True)
class ProxySettings:
    """How ``critic web --sagemaker-endpoint`` runs; each field is one option of it."""

    endpoint_name: str | None = setting(
        None, "The SageMaker endpoint that answers the reviews.", option="sagemaker_endpoint"
    )
    region: str | None = setting(None, "AWS region (default: from the environment).")
    endpoint_url: str | None = setting(
        None,
        "Send InvokeEndpoint here instead of SageMaker's runtime URL (a VPC endpoint, or a "
        "local critic serve: http://127.0.0.1:8080).",
    )
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(8000, "Port of the page.")
    feedback_db: str | None = setting(
        None,
        "Where the page's feedback is kept: a SQLite file (default: feedback.sqlite in the "
        "current folder), dynamodb://TABLE for pages on several machines sharing one table "
        "(critic sagemaker feedback-table create), or 'off'.",
    )
    timeout_s: float = setting(60.0, "How long to wait for the endpoint's answer, in seconds.")

    def __post_init__(self) -> None:
        if self.endpoint_name is None:
            raise CriticError("critic web needs --sagemaker-endpoint NAME: the endpoint to ask")
        check_name("endpoint", self.endpoint_name)
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise CriticError(f"--endpoint-url must be an http(s) URL, got {self.endpoint_url!r}")
        if not 0 < self.port < 65536:
            raise CriticError(f"port must be 1-65535, got {self.port}")
        if not 0 < self.timeout_s <= 3600:
            raise CriticError(f"timeout_s must lie in (0, 3600], got {self.timeout_s}")

    def feedback_path(self) -> Path | str | None:
        """Where feedback is kept (a file, or ``dynamodb://TABLE``); None when it is off."""
        from critic.serving.ab.dynamodb import is_dynamodb
        from critic.serving.ab.feedback import FEEDBACK_FILE  # imports scipy: only when needed

        if self.feedback_db == "off":
            return None
        if is_dynamodb(self.feedback_db):
            return self.feedback_db
        return Path(self.feedback_db or FEEDBACK_FILE)
