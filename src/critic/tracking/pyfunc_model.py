"""The file MLflow keeps with a registered critic model and runs when it loads it ("models
from code"): it names the model, so nothing needs to be pickled. Imported by MLflow alone;
the model itself is :class:`critic.tracking.pyfunc.CriticModel`."""

from mlflow.models import set_model

from critic.tracking.pyfunc import CriticModel

# MLflow's contract for a model from code: the file sets the model when it is run.
set_model(CriticModel())
