"""Experiment tracking and the model registry, with MLflow (the optional ``critic[tracking]``).

* :mod:`~critic.tracking.settings` -- whether to track and where (``--track``,
  ``CRITIC_TRACKING_URI``, ``MLFLOW_TRACKING_URI``; by default a SQLite store in ``runs/``),
  and the one place MLflow is imported from: without it, asking to track is one clear error.
* :mod:`~critic.tracking.runs` -- a training run, an ensemble, an evaluation or a comparison
  logged to MLflow: settings as parameters, per-epoch figures, final metrics, plots, the
  bundle as an artifact; the bundle records its run in its manifest.
* :mod:`~critic.tracking.registry` -- a bundle registered as a model version (a pyfunc model
  wrapping the Predictor, :mod:`~critic.tracking.pyfunc`), aliases such as ``champion``, and
  ``models:/NAME@ALIAS`` fetched into critic's cache and checked like any bundle.

Training itself knows nothing of this: it reports its epochs through
:data:`critic.training.run.EpochHook`, which :class:`~critic.tracking.runs.TrainingRun`
subscribes to. Nothing here imports MLflow at import time.
"""
