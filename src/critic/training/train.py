"""Training: :func:`train` picks the fitter of the model's kind; each ends with the model calibrated.

* ``neural`` -- :func:`critic.training.neural.train_neural`: Adam, BCE-with-logits, gradient clipping, early stopping.
  After every epoch the loop evaluates on the validation split and writes a checkpoint (see
  :mod:`critic.training.checkpoints`); ``resume=True`` continues from the last completed epoch
  and gives the same result as a run that was never interrupted.
  With ``--pretrain-epochs N`` the embedding and word encoder first train as a language model
  on the training split's texts (:mod:`critic.training.pretrain`).
* ``nbsvm`` -- :func:`critic.training.nbsvm.train_nbsvm`: fitted by scikit-learn in one go (no epochs, nothing to
  resume), on the same train / validation / test split.

Neural models also train data-parallel, started by ``torchrun --nproc_per_node N``: every
process takes a slice of every batch, gradients are averaged, the validation figures summed
across processes, and rank 0 alone logs, writes the checkpoints and returns the result the
bundle is written from (see :mod:`critic.training.distributed`). The n-gram model refuses:
scikit-learn fits it in one process.

Every kind ends the same way: the temperature (and, when the reviews have star ratings, the
rating map) is fitted on the validation split, and the metrics gain ECE before and after
calibration (see :func:`critic.evaluation.calibration.calibrate`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from critic.config import RunConfig
from critic.data.prepare import PreparedData
from critic.errors import CriticError
from critic.fileio import check_output_folder
from critic.models import NBSVM_KIND, NEURAL, model_kind
from critic.training import distributed
from critic.training.nbsvm import train_nbsvm
from critic.training.neural import train_neural
from critic.training.run import EpochHook, Log, RunOptions, TrainingResult, resolve_device


def train(
    config: RunConfig,
    out: Path,
    *,
    resume: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
    log: Log = print,
    prepared: PreparedData | None = None,
    threads: int | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainingResult:
    """Train ``config`` and return the best epoch's model with its metrics and calibration.

    ``on_epoch`` is told of each epoch of a neural model as it ends (see RunOptions)."""
    kind = model_kind(config.model.name)  # before any data is read: an unknown name fails here
    check_output_folder(Path(out))  # and so does a folder the bundle could never be written to
    processes = distributed.from_environment()
    if processes.active and kind != NEURAL:
        raise CriticError(
            f"{config.model.name} is fitted in one go by scikit-learn, in one process: train it "
            f"without torchrun (WORLD_SIZE is {processes.world_size})"
        )
    # Rank 0 speaks for all: the others would print the same lines again.
    quiet = not processes.main
    options = RunOptions(
        out=Path(out),
        resume=resume,
        cache_dir=cache_dir,
        progress=progress and not quiet,
        log=(lambda _: None) if quiet else log,
        prepared=prepared,
        processes=processes,
        threads=threads,
        on_epoch=on_epoch if processes.main else None,
    )
    cuda = resolve_device(config.train.device).type == "cuda"
    with distributed.session(processes, cuda=cuda):
        result = FITTERS[kind](config, options)
        if processes.active:
            checksum = distributed.weights_checksum(result.model)
            log(f"rank {processes.rank} of {processes.world_size}: weights checksum {checksum}")
    return result


FITTERS: dict[str, Callable[[RunConfig, RunOptions], TrainingResult]] = {
    NEURAL: train_neural,
    NBSVM_KIND: train_nbsvm,
}
"""One fitter per kind of model (:func:`critic.models.model_kind`)."""
