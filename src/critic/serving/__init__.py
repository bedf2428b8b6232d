"""Serving: SageMaker's hosting contract, locally (FastAPI) and inside SageMaker's container."""
