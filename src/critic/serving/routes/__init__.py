"""The endpoint's HTTP routes, one module per concern; ``POST /invocations`` is not among them:
it goes through :class:`critic.serving.invocations.EndpointApp`, the one request path.

    contract.py   GET /ping, GET /execution-parameters    (SageMaker's hosting contract)
    observe.py    GET /metrics, GET /variants
    admin.py      POST /admin/weights

The page and the A/B view (critic.web) are served beside these; critic.apps.endpoint composes
both into one app. Every client mistake is a 4xx with a JSON ``message``; never a 500.
"""

from fastapi import APIRouter

from critic.serving.routes import admin, contract, observe

router = APIRouter()
for part in (contract, observe, admin):
    router.include_router(part.router)

__all__ = ["router"]
