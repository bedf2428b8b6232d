"""What the page and the A/B view read of whatever answers the reviews.

Two things answer them: the local endpoint (:class:`critic.serving.state.EndpointState`) and
the page in front of a SageMaker endpoint (``critic.apps.sagemaker_web.ProxyState``). The
routes of this package are typed with :class:`PageState`, the protocol both satisfy, so
neither has to imitate the other's fields: a feature one of them lacks answers for itself
(no counts kept across restarts: ``earlier_counts`` is None; no shadows: an empty view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from critic.serving.ab.answers import AnswerIds
from critic.serving.ab.votes import FeedbackBackend
from critic.serving.metrics import EndpointMetrics


class PageVariant(Protocol):
    name: str
    weight: float
    predictor: Any  # .name: the model's name, as the page shows it


class PageVariants(Protocol):
    variants: Mapping[str, PageVariant]

    @property
    def names(self) -> list[str]: ...

    def shares(self) -> dict[str, float]: ...

    def get(self, name: str) -> PageVariant: ...


class PageState(Protocol):
    """What the page's routes read: the variants and their weights, the request metrics, the
    feedback store (None: feedback is off) and the answer ids it checks votes against."""

    settings: Any  # .endpoint_name
    router: PageVariants
    metrics: EndpointMetrics
    feedback: FeedbackBackend | None
    answers: AnswerIds

    def sync_weights(self) -> None:
        """Take up weights changed elsewhere (another worker, SageMaker) before reading them."""

    def earlier_counts(self) -> dict | None:
        """The online counts of the endpoint's earlier runs; None where none are kept."""

    async def shadow_view(self) -> dict:
        """The shadow variants and the data capture as the A/B view shows them."""

    def shadow_names(self) -> list[str]:
        """The shadow variants, scored on the live answers' feedback (none: empty)."""


async def get_page_state(request: Request) -> PageState:
    # async: a plain def dependency would cost a thread hand-off per request.
    return request.app.state.endpoint


Page = Annotated[PageState, Depends(get_page_state)]
