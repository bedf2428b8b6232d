"""critic's Predictor as an MLflow pyfunc model: texts in, critic's answers out.

    model = mlflow.pyfunc.load_model("models:/critic@champion")
    model.predict(["A triumph.", "A mess."])  # [{"label": "positive", "score": ...}, ...]

The model's one artifact is the bundle itself; loading it goes through
:meth:`critic.inference.predictor.Predictor.load`, which checks every file against the
bundle's manifest, so a registry version answers exactly as ``critic predict`` does on the
same bundle. MLflow logs the model "from code" (:mod:`critic.tracking.pyfunc_model` is the
file it keeps and runs at load): nothing is pickled, as nothing in a bundle is.

This module imports MLflow at the top: only code that has MLflow imports it.
"""

from __future__ import annotations

from mlflow.pyfunc import PythonModel

from critic.tracking.registry import BUNDLE_ARTIFACT


class CriticModel(PythonModel):
    """A bundle's Predictor behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        from critic.inference.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[BUNDLE_ARTIFACT])

    # The hints let MLflow check the input and turn a one-column DataFrame (or a Series) of
    # reviews into the list of texts the Predictor takes.
    def predict(self, context, model_input: list[str], params=None) -> list[dict]:
        """One answer per review, in order: label, probability, score, rating, tokens."""
        return self.predictor.predict(list(model_input))
