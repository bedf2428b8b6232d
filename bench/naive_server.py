"""The yardstick: the ten-line server a user would write instead of `critic serve`.

    python bench/naive_server.py BUNDLE --port 8081

A FastAPI ``async`` route that calls ``Predictor.predict`` once per request, as the reference
project's ``predict_fn`` and MLflow's scoring server do: no batching, no queue, no metrics.
bench/serve_load.py runs it beside critic, same bundle and same uvicorn settings, so each of
critic's figures is read as a ratio against it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response

from critic.inference.predictor import Predictor


def naive_app(bundle: Path) -> FastAPI:
    predictor = Predictor.load(bundle)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = (await request.body()).decode("utf-8")
        if request.headers.get("content-type", "").startswith("application/json"):
            reviews = json.loads(body)["instances"]
        else:
            reviews = [body]
        predictions = predictor.predict(reviews)
        return Response(json.dumps({"predictions": predictions}), media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    uvicorn.run(naive_app(args.bundle), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
