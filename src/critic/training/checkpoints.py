"""Where a neural training run stands, and the checkpoint that lets it resume after a kill.

After every epoch the loop writes ``<out>/checkpoint/``:

    model.safetensors       the weights after the last completed epoch
    best.safetensors        the best weights so far (lowest validation loss)
    optimizer.safetensors   Adam's moments and step counts, one flat tensor each
    rng.safetensors         torch's random state, so dropout draws on as if never stopped
    state.json              the run's settings, the optimizer's parameter groups, and the
                            :class:`TrainState` counters (history, best epoch, patience...)

No pickle: safetensors and JSON only, like a bundle. A checkpoint is written to a temporary
folder and swapped in by two renames (current -> ``.checkpoint.old``, new -> current), so a
run killed at any moment -- even with ``kill -9`` -- leaves one complete checkpoint, which
:func:`recover_checkpoint` finds. Resuming gives the same result as a run never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from critic.config import RunConfig, TrainConfig
from critic.errors import CriticError

CHECKPOINT_DIR = "checkpoint"
PREVIOUS_CHECKPOINT_DIR = f".{CHECKPOINT_DIR}.old"
"""Where the last checkpoint waits while a new one is swapped in."""
CHECKPOINT_FORMAT = 1
STATE_FILE = "state.json"


@dataclass
class TrainState:
    """Where a neural run stands after its last completed epoch."""

    best_weights: dict[str, torch.Tensor]
    """The model's state dict at the best epoch so far (the start, before any epoch)."""
    history: list[dict] = field(default_factory=list)
    """One row per completed epoch: train and validation loss and accuracy, seconds."""
    best_val_loss: float = math.inf
    best_epoch: int = 0
    """1-based; 0 before the first epoch."""
    stale_epochs: int = 0
    """Epochs since the validation loss last improved: early stopping counts these."""
    train_seconds: float = 0.0
    """Wall time of the completed epochs, validation included: the time budget counts this."""
    step_seconds: float = 0.0
    """Time spent in optimiser steps alone: the training speed is measured by this."""
    reviews_seen: int = 0

    @classmethod
    def start(cls, model: torch.nn.Module) -> TrainState:
        """The state of a run before its first epoch: the initial weights are the best yet."""
        return cls(best_weights=_copy(model.state_dict()))

    @property
    def epoch(self) -> int:
        """How many epochs are complete."""
        return len(self.history)

    @property
    def best_row(self) -> dict:
        """The best epoch's history row ({} before the first epoch)."""
        return self.history[self.best_epoch - 1] if self.best_epoch else {}

    def record(self, row: dict, model: torch.nn.Module) -> bool:
        """Add a completed epoch's row; keep the model's weights when its validation loss is
        the best yet. Returns whether it was."""
        self.history.append(row)
        if row["val_loss"] < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.stale_epochs = (
                row["val_loss"],
                row["epoch"],
                0,
            )
            self.best_weights = _copy(model.state_dict())
            return True
        self.stale_epochs += 1
        return False

    def stop_reason(self, settings: TrainConfig) -> str | None:
        """Why the run should stop before another epoch, or None to go on."""
        if self.stale_epochs >= settings.patience:
            return f"early stop: no better validation loss for {self.stale_epochs} epochs"
        if settings.max_seconds is not None and self.train_seconds >= settings.max_seconds:
            return f"time budget of {settings.max_seconds:.0f} s reached"
        return None

    def counters(self) -> dict:
        """Everything but the weights, as JSON-safe values (what ``state.json`` holds)."""
        values = asdict(self)
        del values["best_weights"]
        return values

    @classmethod
    def from_counters(cls, counters: dict, best_weights: dict[str, torch.Tensor]) -> TrainState:
        names = {f.name for f in fields(cls)} - {"best_weights"}
        return cls(best_weights=best_weights, **{k: v for k, v in counters.items() if k in names})


def save_checkpoint(
    out: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: RunConfig,
    state: TrainState,
) -> None:
    """Write the run's checkpoint to a temporary folder, then swap it in: never half-written."""
    folder = Path(out) / CHECKPOINT_DIR
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_DIR}.", dir=folder.parent))
    try:
        save_file(_flat(model.state_dict()), temporary / "model.safetensors")
        save_file(_flat(state.best_weights), temporary / "best.safetensors")
        tensors, groups = _optimizer_tensors(optimizer)
        save_file(tensors, temporary / "optimizer.safetensors")
        save_file({"torch": torch.get_rng_state()}, temporary / "rng.safetensors")
        written = {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "optimizer_groups": groups,
            **state.counters(),
        }
        (temporary / STATE_FILE).write_text(json.dumps(written, indent=1))
        previous = folder.parent / PREVIOUS_CHECKPOINT_DIR
        if previous.exists():
            shutil.rmtree(previous)
        if folder.exists():
            os.replace(folder, previous)
        os.replace(temporary, folder)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def checkpoint_config(out: Path) -> RunConfig:
    """The settings the interrupted run in ``out`` was started with; a CriticError when it
    left no checkpoint."""
    saved = json.loads((_last_checkpoint(out) / STATE_FILE).read_text())
    return RunConfig.from_dict(saved["config"])


def restore_checkpoint(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> TrainState:
    """Load the last checkpoint's weights, optimizer and random state into ``model``,
    ``optimizer`` and torch; return where the run stood."""
    folder = _last_checkpoint(out)
    saved = json.loads((folder / STATE_FILE).read_text())
    model.load_state_dict(load_file(folder / "model.safetensors", device=str(device)))
    _load_optimizer(optimizer, folder, saved["optimizer_groups"], device)
    torch.set_rng_state(load_file(folder / "rng.safetensors")["torch"])
    best = load_file(folder / "best.safetensors", device=str(device))
    return TrainState.from_counters(saved, best)


def recover_checkpoint(out: Path) -> Path | None:
    """The last complete checkpoint of the run in ``out``, or None when there is none.

    A run killed between the two renames of :func:`save_checkpoint` leaves only the
    previous checkpoint, which is put back here.
    """
    folder = Path(out) / CHECKPOINT_DIR
    if (folder / STATE_FILE).is_file():
        return folder
    previous = Path(out) / PREVIOUS_CHECKPOINT_DIR
    if (previous / STATE_FILE).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(previous, folder)
        return folder
    return None


def _last_checkpoint(out: Path) -> Path:
    folder = recover_checkpoint(out)
    if folder is None:
        raise CriticError(f"nothing to resume: {Path(out) / CHECKPOINT_DIR} holds no checkpoint")
    return folder


def has_checkpoint(out: Path) -> bool:
    """Whether ``out`` holds what an interrupted run leaves (without repairing anything)."""
    return any((Path(out) / name).is_dir() for name in (CHECKPOINT_DIR, PREVIOUS_CHECKPOINT_DIR))


def remove_checkpoint(out: Path) -> None:
    """Delete the run's checkpoint: a finished or restarted run needs none."""
    for name in (CHECKPOINT_DIR, PREVIOUS_CHECKPOINT_DIR):
        shutil.rmtree(Path(out) / name, ignore_errors=True)


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in state.items()}


def _flat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors writes contiguous CPU tensors only.
    return {name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """Split an optimizer state dict into flat tensors and JSON-safe param groups."""
    state_dict = optimizer.state_dict()
    tensors = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            tensors[f"{index}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
    return tensors, state_dict["param_groups"]


def _load_optimizer(optimizer, folder: Path, groups: list, device: torch.device) -> None:
    per_parameter: dict[int, dict] = {}
    for key, value in load_file(folder / "optimizer.safetensors").items():
        index, name = key.split(".", 1)
        # Adam keeps "step" on the CPU; moments live with the parameters.
        per_parameter.setdefault(int(index), {})[name] = (
            value if name == "step" else value.to(device)
        )
    optimizer.load_state_dict({"state": per_parameter, "param_groups": groups})
