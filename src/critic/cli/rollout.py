"""``critic rollout``: release a variant of a running ``critic serve`` in steps under its
guardrails, stop it, or see where it stands -- the admin routes, from a shell."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated

import typer

from critic.cli.app import app, echo_json
from critic.errors import CriticError

rollout_app = typer.Typer(
    help="Release a variant of a running critic serve in steps, rolled back by its guardrails.",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")

UrlOption = Annotated[str, typer.Option(help="The endpoint (critic serve).")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="CRITIC_ADMIN_TOKEN", help="The endpoint's admin token (or CRITIC_ADMIN_TOKEN)."
    ),
]
DEFAULT_URL = "http://127.0.0.1:8080"


def _call(url: str, path: str, payload: object | None = None, token: str | None = None) -> dict:
    """The endpoint's JSON answer; its refusal, or no endpoint there, as one CriticError."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("message", error.reason)
        except ValueError:
            message = error.reason
        raise CriticError(f"rollout: {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CriticError(f"rollout: no endpoint at {url}: {reason}") from None


def _steps(text: str) -> list[float]:
    try:
        return [float(part) / 100 for part in text.split(",") if part.strip()]
    except ValueError:
        raise CriticError(f"--steps takes percentages such as 5,25,50,100, got {text!r}") from None


@rollout_app.command("start")
def start(
    variant: Annotated[str, typer.Argument(help="The variant whose traffic rises.")],
    steps: Annotated[str, typer.Option(help="Its share at each step, in percent.")] = "5,25,50,100",
    bake_minutes: Annotated[float, typer.Option(help="How long each step bakes.")] = 5.0,
    min_requests: Annotated[
        int, typer.Option(help="The variant's requests a step needs before it may end.")
    ] = 100,
    max_latency_ratio: Annotated[
        float, typer.Option(help="Roll back when its p95 passes the champion's times this.")
    ] = 2.0,
    max_error_increase: Annotated[
        float, typer.Option(help="Roll back when its 5xx share passes the champion's by this.")
    ] = 0.01,
    accuracy_margin: Annotated[
        float, typer.Option(help="Roll back when its feedback accuracy is worse by more.")
    ] = 0.03,
    url: UrlOption = DEFAULT_URL,
    admin_token: TokenOption = None,
) -> None:
    """Start a rollout: the variant's share rises through the steps, each baked under the
    guardrails (server errors, 503s, p95 latency, feedback accuracy against the champion over
    the same period); a tripped guardrail takes its traffic back at once. Prints the rollout."""
    plan = {
        "variant": variant,
        "steps": _steps(steps),
        "bake_s": bake_minutes * 60,
        "min_requests": min_requests,
        "limits": {
            "max_latency_ratio": max_latency_ratio,
            "max_error_increase": max_error_increase,
            "accuracy_margin": accuracy_margin,
        },
    }
    echo_json(_call(url, "/admin/rollout", plan, admin_token))


@rollout_app.command("stop")
def stop(
    keep: Annotated[
        bool, typer.Option(help="Leave the traffic at the step reached instead of rolling back.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    admin_token: TokenOption = None,
) -> None:
    """Stop the running rollout: its variant's traffic goes back to where it started (or,
    with --keep, stays at the step it reached)."""
    echo_json(_call(url, "/admin/rollout/stop", {"roll_back": not keep}, admin_token))


@rollout_app.command("status")
def status(url: UrlOption = DEFAULT_URL) -> None:
    """The running rollout (or the latest) with its step, its history and the figures its
    guardrails last judged; exits 1 when the latest rollout was rolled back."""
    answer = _call(url, "/rollout")
    echo_json(answer)
    latest = answer.get("rollout")
    if latest is not None and latest["status"] == "rolled_back":
        raise typer.Exit(1)
