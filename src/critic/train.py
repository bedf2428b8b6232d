"""Training: the loop for neural models, the fit of the n-gram model, and calibration.

Neural models: Adam, BCE-with-logits, gradient clipping, early stopping, resume.

After every epoch the loop evaluates on the validation split and writes a checkpoint (weights,
the best weights so far, the optimizer state, the random state and the history) to
``<out>/checkpoint/``, atomically. ``resume=True`` continues from the last completed epoch and
gives the same result as a run that was never interrupted.

``nbsvm`` is fitted by scikit-learn in one go (no epochs, nothing to resume), on the same
train / validation / test split.

Every kind ends the same way: the temperature (and, when the reviews have star ratings, the
rating map) is fitted on the validation split, and the metrics gain ECE before and after
calibration (see :mod:`critic.calibration`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from tqdm import tqdm

from critic.calibration import Calibration, fit_calibration
from critic.config import RunConfig
from critic.data.batches import BucketedBatches
from critic.data.embeddings import (
    WORD2VEC,
    EmbeddingInit,
    EmbeddingsError,
    Word2VecSettings,
    initialise_embedding,
    load_vectors,
    train_word2vec,
    vectors_for_vocabulary,
)
from critic.data.prepare import PreparedData, load_splits, prepare
from critic.data.text import tokenize_many
from critic.data.vocab import Vocab
from critic.errors import CriticError, DataError
from critic.evaluate import (
    binary_log_loss,
    calibration_metrics,
    predict_split,
    predict_split_logits,
    split_metrics,
)
from critic.models import NEURAL, build_model, check_model_config, model_kind

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FORMAT = 1


@dataclass
class TrainingResult:
    config: RunConfig
    vocab: Vocab | None
    """None for models without a word vocabulary (nbsvm keeps its n-grams itself)."""
    model: object
    """An ``nn.Module``, or a fitted :class:`~critic.models.nbsvm.NBSVM`."""
    metrics: dict
    history: list[dict] = field(default_factory=list)
    calibration: Calibration = field(default_factory=Calibration)


def calibrate(
    val: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    test: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    log: Callable[[str], None] = print,
) -> tuple[Calibration, dict]:
    """Fit the calibration on the validation split's ``(labels, logits, ratings)``; measure it
    on both splits."""
    labels, logits, ratings = val
    calibration = fit_calibration(logits, labels, ratings)
    metrics = calibration_metrics(calibration, {"val": val, "test": test})
    rating = (
        f"; rating from stars, test MAE {metrics['test_rating_mae']:.2f}, "
        f"Spearman {metrics['test_rating_spearman']:.3f}"
        if "test_rating_mae" in metrics
        else f"; rating from the {calibration.rating_source}"
    )
    log(
        f"calibration: temperature {calibration.temperature:.3f}, test ECE "
        f"{metrics['test_ece_before']:.4f} -> {metrics['test_ece_after']:.4f}{rating}"
    )
    return calibration, metrics


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CriticError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    config: RunConfig,
    out: Path,
    *,
    resume: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    prepared: PreparedData | None = None,
) -> TrainingResult:
    """Train ``config`` and return the best epoch's model with its metrics and calibration."""
    kind = model_kind(config.model.name)  # before any data is read: an unknown name fails here
    if kind != NEURAL:
        if resume:
            raise CriticError(f"{config.model.name} trains in one go: there is nothing to resume")
        remove_checkpoint(Path(out))
        return train_nbsvm(config, log=log)
    if (
        config.train.embeddings not in (None, WORD2VEC)
        and not Path(config.train.embeddings).is_file()
    ):
        raise EmbeddingsError(f"no word-vector file at {config.train.embeddings}")
    check_model_config(config.model)
    out = Path(out)
    checkpoint = out / CHECKPOINT_DIR
    state = None
    if resume:
        if recover_checkpoint(out) is None:
            raise CriticError(f"nothing to resume: {checkpoint} holds no checkpoint")
        state = json.loads((checkpoint / "state.json").read_text())
        saved = RunConfig.from_dict(state["config"])
        if saved != config:
            log("resume: continuing with the settings the interrupted run was started with")
        config = saved
    else:
        remove_checkpoint(out)

    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)
    if prepared is None:
        prepared = prepare(config.data, cache_dir, log=log)
    config = config.replace(model=config.model.replace(vocab_size=len(prepared.vocab)))
    embedding_init = None
    embeddings_seconds = None
    if config.train.embeddings is not None and state is None:
        started = time.perf_counter()
        embedding_init, config = _load_embeddings(config, prepared, log)
        embeddings_seconds = round(time.perf_counter() - started, 2)  # word2vec: part of the cost
    model = build_model(config.model).to(device)
    if embedding_init is not None:
        initialise_embedding(model.embedding.weight, embedding_init, seed=config.train.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.train.learning_rate, weight_decay=config.train.weight_decay
    )
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: {config.model.name}, {parameters:,} parameters, on {device}")

    history: list[dict] = []
    best_val_loss = math.inf
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch = 0
    stale_epochs = 0
    train_seconds = 0.0
    step_seconds = 0.0
    reviews_seen = 0
    if state is not None:
        model.load_state_dict(load_file(checkpoint / "model.safetensors", device=str(device)))
        best_state = load_file(checkpoint / "best.safetensors", device=str(device))
        _load_optimizer(optimizer, checkpoint, state, device)
        torch.set_rng_state(load_file(checkpoint / "rng.safetensors")["torch"])
        history = state["history"]
        best_val_loss, best_epoch = state["best_val_loss"], state["best_epoch"]
        stale_epochs = state["stale_epochs"]
        train_seconds, step_seconds = state["train_seconds"], state["step_seconds"]
        reviews_seen = state["reviews_seen"]
        log(f"resume: continuing after epoch {len(history)} of {config.train.epochs}")

    train_batches = BucketedBatches(
        prepared.splits["train"],
        config.train.batch_size,
        config.data.max_length,
        pool_batches=config.train.pool_batches,
        seed=config.train.seed,
    )
    # Gradients that vanish through hundreds of LSTM steps become subnormal floats, and CPU
    # arithmetic on subnormals is many times slower: flushing them to zero made a training
    # step here about 5x faster, with no measurable effect on accuracy.
    flush_before = torch.set_flush_denormal(True) if device.type == "cpu" else False
    try:
        stop_reason = "completed all epochs"
        for epoch in range(len(history) + 1, config.train.epochs + 1):
            if stale_epochs >= config.train.patience:
                stop_reason = f"early stop: no better validation loss for {stale_epochs} epochs"
                break
            if config.train.max_seconds is not None and train_seconds >= config.train.max_seconds:
                stop_reason = f"time budget of {config.train.max_seconds:.0f} s reached"
                break
            started = time.perf_counter()
            train_batches.set_epoch(epoch)
            row, seconds = _train_epoch(
                model, optimizer, train_batches, device, config, epoch, progress
            )
            step_seconds += seconds
            reviews_seen += len(prepared.splits["train"])
            val_probabilities = predict_split(
                model, prepared.splits["validation"], config.data.max_length, device
            )
            val_labels = prepared.splits["validation"].labels
            row["val_loss"] = binary_log_loss(val_labels, val_probabilities)
            row["val_accuracy"] = float(((val_probabilities >= 0.5) == val_labels).mean())
            row["seconds"] = round(time.perf_counter() - started, 2)
            train_seconds += time.perf_counter() - started
            history.append(row)
            improved = row["val_loss"] < best_val_loss
            if improved:
                best_val_loss, best_epoch, stale_epochs = row["val_loss"], epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale_epochs += 1
            log(
                f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
                f"{' (best)' if improved else ''} | {row['seconds']:.0f} s"
            )
            _save_checkpoint(
                checkpoint, model, best_state, optimizer, config,
                {
                    "history": history, "best_val_loss": best_val_loss, "best_epoch": best_epoch,
                    "stale_epochs": stale_epochs, "train_seconds": train_seconds,
                    "step_seconds": step_seconds, "reviews_seen": reviews_seen,
                },
            )  # fmt: skip
    finally:
        if device.type == "cpu":
            torch.set_flush_denormal(flush_before)

    model.load_state_dict(best_state)
    test = prepared.splits["test"]
    validation = prepared.splits["validation"]
    test_logits = predict_split_logits(model, test, config.data.max_length, device)
    val_logits = predict_split_logits(model, validation, config.data.max_length, device)
    best_row = history[best_epoch - 1] if best_epoch else {}
    metrics = {
        "model": config.model.name,
        "parameters": parameters,
        "val_accuracy": best_row.get("val_accuracy"),
        "val_loss": best_row.get("val_loss"),
        **split_metrics("test", test.labels, test_logits),
        "test_reviews": len(test),
        "train_reviews": len(prepared.splits["train"]),
        "epochs": len(history),
        "best_epoch": best_epoch,
        "stop_reason": stop_reason,
        "train_seconds": round(train_seconds, 2),
        "train_reviews_per_second": round(reviews_seen / step_seconds, 1) if step_seconds else None,
        "prepare_seconds": prepared.stats.get("prepare_seconds"),
        "embeddings_coverage": None
        if embedding_init is None
        else round(embedding_init.coverage, 4),
        "embeddings_seconds": embeddings_seconds,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    calibration, calibrated = calibrate(
        (validation.labels, val_logits, validation.ratings),
        (test.labels, test_logits, test.ratings),
        log,
    )
    metrics.update(calibrated)
    log(
        f"done: {stop_reason}; best epoch {best_epoch} of {len(history)}, "
        f"val accuracy {metrics['val_accuracy']:.4f}, test accuracy {metrics['test_accuracy']:.4f}, "
        f"{train_seconds:.0f} s training ({metrics['train_reviews_per_second']} reviews/s)"
    )
    return TrainingResult(config, prepared.vocab, model, metrics, history, calibration)


def train_nbsvm(config: RunConfig, *, log: Callable[[str], None] = print) -> TrainingResult:
    """Fit the n-gram model on the training split, choosing C on the validation split.

    It reads the reviews and tokenises them itself (about 5 s for the embedded reviews): the
    prepared data's word ids would lose the n-grams.
    """
    started = time.perf_counter()
    raw = load_splits(config.data)
    cut = config.data.max_length
    tokenized = {
        name: [tokens[:cut] for tokens in tokenize_many(reviews.texts)]
        for name, reviews in raw.items()
    }
    prepare_seconds = time.perf_counter() - started
    log(
        f"data: {', '.join(f'{len(r):,} {name}' for name, r in raw.items())} reviews, "
        f"read and tokenised in {prepare_seconds:.1f} s"
    )
    fit_started = time.perf_counter()
    model = build_model(config.model)
    tried = model.fit(
        tokenized["train"], raw["train"].labels, tokenized["validation"],
        raw["validation"].labels, log=log,
    )  # fmt: skip
    train_seconds = time.perf_counter() - fit_started
    if len(model) < 3:
        raise DataError(
            f"nbsvm: only {len(model)} n-grams occur in at least {config.model.min_df} training "
            "reviews; give more reviews or a lower --min-df"
        )
    config = config.replace(model=model.config.replace(vocab_size=len(model)))
    val_logits = model.decision_function(tokenized["validation"])
    test_logits = model.decision_function(tokenized["test"])
    val, test = raw["validation"], raw["test"]
    chosen = min(tried, key=lambda t: t.val_loss)
    metrics = {
        "model": config.model.name,
        "parameters": len(model) + 1,
        "ngrams": len(model),
        **split_metrics("val", val.labels, val_logits),
        **split_metrics("test", test.labels, test_logits),
        "test_reviews": len(test),
        "train_reviews": len(raw["train"]),
        "epochs": None,
        "best_epoch": None,
        "stop_reason": f"fitted; chose 1-{chosen.ngram_max}-grams, C={chosen.c:g}",
        "selection": [vars(t) for t in tried],
        "train_seconds": round(train_seconds, 2),
        "train_reviews_per_second": round(len(raw["train"]) / train_seconds, 1),
        "prepare_seconds": round(prepare_seconds, 2),
        "device": "cpu",
        "threads": 1,
        "python": platform.python_version(),
    }
    calibration, calibrated = calibrate(
        (val.labels, val_logits, val.ratings), (test.labels, test_logits, test.ratings), log
    )
    metrics.update(calibrated)
    log(
        f"done: nbsvm, val accuracy {metrics['val_accuracy']:.4f}, test accuracy "
        f"{metrics['test_accuracy']:.4f}, {train_seconds:.0f} s fitting"
    )
    return TrainingResult(config, None, model, metrics, [], calibration)


def _load_embeddings(
    config: RunConfig, prepared: PreparedData, log: Callable[[str], None]
) -> tuple[EmbeddingInit, RunConfig]:
    """The vocabulary's rows of the embeddings file; the model's embedding size follows it.

    ``word2vec`` instead of a file trains word2vec here, on the training split as the model
    reads it (cut to ``max_length``, words outside the vocabulary as ``<unk>``), with vectors
    of the model's embedding size.
    """
    vocab = prepared.vocab
    path = config.train.embeddings
    if path == WORD2VEC:
        train_split = prepared.splits["train"]
        sentences = [vocab.decode(train_split.review(i)) for i in range(len(train_split))]
        settings = Word2VecSettings(dimension=config.model.embedding_dim, seed=config.train.seed)
        vectors = train_word2vec(sentences, settings, log=log)
    else:
        vectors = load_vectors(Path(path), keep=vocab.words)
    init = vectors_for_vocabulary(vocab.words, vectors)
    if init.matrix.shape[1] != config.model.embedding_dim:
        log(f"embeddings: embedding size {init.matrix.shape[1]}, as in {path}")
        config = config.replace(model=config.model.replace(embedding_dim=init.matrix.shape[1]))
    log(
        f"embeddings: {int(init.found.sum()):,} of {len(vocab) - 2:,} words found in {path} "
        f"({init.coverage:.1%} coverage); the others start at random"
    )
    if not init.found.any():
        raise EmbeddingsError(f"{path} has a vector for none of the vocabulary's words")
    return init, config


def _train_epoch(model, optimizer, batches, device, config, epoch, progress) -> tuple[dict, float]:
    model.train()
    total_loss = 0.0
    correct = 0
    seen = 0
    started = time.perf_counter()
    bar = tqdm(
        batches, total=len(batches), desc=f"epoch {epoch}/{config.train.epochs}",
        unit="batch", disable=not progress, dynamic_ncols=True, leave=True,
    )  # fmt: skip
    for batch in bar:
        batch = batch.to(device)
        logits = model(batch.token_ids, batch.lengths)
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        size = len(batch.labels)
        total_loss += loss.item() * size
        correct += int(((logits >= 0) == (batch.labels >= 0.5)).sum())
        seen += size
        elapsed = time.perf_counter() - started
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}", reviews_s=f"{seen / elapsed:.0f}", refresh=False
        )
    bar.close()
    seconds = time.perf_counter() - started
    return (
        {"epoch": epoch, "train_loss": total_loss / seen, "train_accuracy": correct / seen},
        seconds,
    )


# --- checkpoints --------------------------------------------------------------------------


def _save_checkpoint(
    folder: Path, model, best_state, optimizer, config: RunConfig, progress: dict
) -> None:
    """Write the checkpoint to a temporary folder, then swap it in: never half-written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=folder.parent))
    try:
        save_file(_contiguous(model.state_dict()), temporary / "model.safetensors")
        save_file(_contiguous(best_state), temporary / "best.safetensors")
        tensors, groups = _optimizer_tensors(optimizer)
        save_file(tensors, temporary / "optimizer.safetensors")
        save_file({"torch": torch.get_rng_state()}, temporary / "rng.safetensors")
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "optimizer_groups": groups,
            **progress,
        }
        (temporary / "state.json").write_text(json.dumps(state, indent=1))
        old = _previous(folder)
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            os.replace(folder, old)
        os.replace(temporary, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """Split an optimizer state dict into flat tensors and JSON-safe param groups."""
    state_dict = optimizer.state_dict()
    tensors = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            tensors[f"{index}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
    return tensors, state_dict["param_groups"]


def _load_optimizer(optimizer, folder: Path, state: dict, device: torch.device) -> None:
    tensors = load_file(folder / "optimizer.safetensors")
    per_parameter: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        # Adam keeps "step" on the CPU; moments live with the parameters.
        per_parameter.setdefault(int(index), {})[name] = (
            value if name == "step" else value.to(device)
        )
    optimizer.load_state_dict({"state": per_parameter, "param_groups": state["optimizer_groups"]})


def _previous(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def recover_checkpoint(out: Path) -> Path | None:
    """The last complete checkpoint of the run in ``out``, or None when there is none.

    A new checkpoint replaces the old by two renames (current -> .old, new -> current); a run
    killed between the two leaves only the .old one, which is put back here.
    """
    folder = Path(out) / CHECKPOINT_DIR
    if (folder / "state.json").is_file():
        return folder
    previous = _previous(folder)
    if (previous / "state.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(previous, folder)
        return folder
    return None


def remove_checkpoint(out: Path) -> None:
    folder = Path(out) / CHECKPOINT_DIR
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(_previous(folder), ignore_errors=True)
