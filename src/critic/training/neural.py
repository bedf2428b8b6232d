"""Neural models: epochs of Adam, BCE-with-logits, gradient clipping and early stopping.

After every epoch the loop evaluates on the validation split and writes a checkpoint (see
:mod:`critic.training.checkpoints`); ``resume=True`` continues from the last completed epoch and
gives the same result as a run that was never interrupted. With ``--pretrain-epochs N`` the
embedding and word encoder first train as a language model on the training split's texts
(:mod:`critic.training.pretrain`). Started by ``torchrun --nproc_per_node N``, every process
takes a slice of every batch (:mod:`critic.training.distributed`).
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from critic.config import RunConfig, TrainConfig
from critic.data.batches import BucketedBatches, Crops, TokenNoise
from critic.data.embeddings import (
    WORD2VEC,
    EmbeddingInit,
    EmbeddingsError,
    Word2VecSettings,
    cached_word2vec,
    check_embeddings,
    domain_specific_ids,
    glove_words,
    initialise_embedding,
    load_embeddings,
    vectors_for_vocabulary,
)
from critic.data.prepare import PreparedData, default_cache_dir, prepare
from critic.errors import CriticError
from critic.evaluation.calibration import binary_log_loss, calibrate
from critic.evaluation.evaluate import predict_split, predict_split_logits, split_metrics
from critic.models import build_model, check_model_config
from critic.models.encoder import check_encoder_installed
from critic.models.language_model import check_pretrainable
from critic.system import ThreadGovernor, subnormals_flushed
from critic.training import distributed
from critic.training.checkpoints import (
    TrainState,
    checkpoint_config,
    remove_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from critic.training.pretrain import pretrain_language_model
from critic.training.run import (
    Log,
    RunOptions,
    TrainingResult,
    progress_bar,
    resolve_device,
    seed_everything,
)


def train_neural(config: RunConfig, run: RunOptions) -> TrainingResult:
    """Train a neural model epoch by epoch, from the run's checkpoint when resuming."""
    check_embeddings(config.train.embeddings)
    if config.train.domain_words:
        glove_words("--domain-words")  # the general-text ranks, before the data is read
    # Fails in a second, before the data is read or word2vec trained.
    miniature = check_model_config(config.model)
    build_optimizer(miniature, config.train)
    pretrained = getattr(miniature, "pretrained", False)
    if pretrained:
        check_encoder_installed()
        if config.train.embeddings is not None:
            raise CriticError(
                f"--embeddings: {config.model.name} starts from pretrained weights of its own"
            )
    if config.train.pretrain_epochs:
        check_pretrainable(miniature, config.model.name)
    processes = run.processes
    if run.resume:
        with distributed.main_first(processes):  # rank 0 repairs a half-swapped checkpoint
            saved = checkpoint_config(run.out)
        if saved != config:
            run.log("resume: continuing with the settings the interrupted run was started with")
        config = saved
    elif processes.main:
        remove_checkpoint(run.out)

    device = resolve_device(config.train.device)
    if device.type == "cuda" and processes.active:
        device = torch.device("cuda", processes.local_rank)
    seed_everything(config.train.seed)
    prepared = run.prepared
    if prepared is None:
        with distributed.main_first(processes):  # the others then read rank 0's cache
            prepared = prepare(config.data, run.cache_dir, log=run.log)
    config = config.replace(model=config.model.replace(vocab_size=len(prepared.vocab)))
    embedding_metrics: dict = {"embeddings_coverage": None, "embeddings_seconds": None}
    embedding_init = None
    if config.train.embeddings is not None and not run.resume:
        started = time.perf_counter()
        embedding_init, config = _load_embeddings(config, prepared, run.cache_dir, run.log)
        embedding_metrics = {
            "embeddings_coverage": round(embedding_init.coverage, 4),
            # word2vec trains here: part of the cost of this run
            "embeddings_seconds": round(time.perf_counter() - started, 2),
        }
    model = build_model(config.model)
    if pretrained and not run.resume:  # a resumed run's checkpoint holds the weights
        model.start_from_pretrained(prepared.vocab.words, log=run.log)
    model = model.to(device)
    if embedding_init is not None:
        initialise_embedding(model.embedding.weight, embedding_init, seed=config.train.seed)
    optimizer = build_optimizer(model, config.train)
    parameters = sum(p.numel() for p in model.parameters())
    run.log(f"model: {config.model.name}, {parameters:,} parameters, on {device}")
    if processes.active:
        run.log(
            f"data-parallel: {processes.world_size} processes, {torch.get_num_threads()} "
            "thread(s) each; every batch split across them"
        )
    # A resumed run pre-trained before its first checkpoint; how long that took is not kept.
    pretrain_metrics: dict = {
        "pretrain_epochs": config.train.pretrain_epochs,
        "pretrain_seconds": None,
    }
    # torchrun's processes split the cores between them (distributed.py); one process sizes
    # its threads to the cores the machine's other work leaves it, as it goes.
    governor = None
    if device.type == "cpu" and not processes.active:
        governor = ThreadGovernor(run.threads, log=run.log)
        governor.start()
    if run.resume:
        state = restore_checkpoint(run.out, model, optimizer, device)
        run.log(f"resume: continuing after epoch {state.epoch} of {config.train.epochs}")
    else:
        if config.train.pretrain_epochs:
            with subnormals_flushed(device):  # as the classifier's epochs are
                pretrain_metrics = pretrain_language_model(
                    model, config, prepared, device, processes, progress=run.progress,
                    log=run.log, on_step=governor.check if governor else None,
                )  # fmt: skip
        state = TrainState.start(model)

    try:
        with subnormals_flushed(device):
            stop_reason = _run_epochs(
                model, optimizer, config, prepared, device, state, run, governor
            )
    finally:
        if governor is not None:
            governor.stop()
    model.load_state_dict(state.best_weights)
    if not processes.main:
        # Its weights are rank 0's; rank 0 alone measures them and writes the bundle.
        return TrainingResult(config, prepared.vocab, model, {}, state.history)
    metrics = {
        "parameters": parameters,
        "processes": processes.world_size,
        **embedding_metrics,
        **pretrain_metrics,
    }
    return _neural_result(config, model, prepared, device, state, stop_reason, metrics, run.log)


def build_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Adam:
    """Adam over the model's parameters; a model's n-gram branch (its ``ngrams`` module) at
    ``train.ngram_learning_rate`` when that is set."""
    if train.ngram_learning_rate is None:
        groups: list[dict] = [{"params": list(model.parameters())}]
    else:
        branch = getattr(model, "ngrams", None)
        if not isinstance(branch, torch.nn.Module):
            raise CriticError(
                "--ngram-learning-rate is for a model with an n-gram branch (attention-ngrams)"
            )
        in_branch = {id(p) for p in branch.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in in_branch]},
            {"params": list(branch.parameters()), "lr": train.ngram_learning_rate},
        ]
    return torch.optim.Adam(groups, lr=train.learning_rate, weight_decay=train.weight_decay)


def _run_epochs(
    model, optimizer, config, prepared, device, state: TrainState, run, governor=None
) -> str:
    """Train from where ``state`` stands, one checkpoint per epoch; return why it stopped.

    With several processes, every figure that decides what happens next (validation loss,
    seconds spent) is summed or maxed across them, so they all stop at the same epoch.
    """
    processes = run.processes
    train_batches = BucketedBatches(
        prepared.splits["train"],
        config.train.batch_size,
        config.data.max_length,
        pool_batches=config.train.pool_batches,
        seed=config.train.seed,
        shard=(processes.rank, processes.world_size),
        noise=token_noise(config.train, prepared, run.log if processes.main else None),
        crops=Crops(config.train.crop_share),
    )
    if config.train.crop_share and processes.main:
        low, high = train_batches.crops.words
        run.log(
            f"crops: {config.train.crop_share:.0%} of the training reviews read as {low}-{high} "
            "consecutive words each epoch"
        )
    trainer = distributed.data_parallel(model, processes, device)
    validation = distributed.shard(prepared.splits["validation"], processes)
    rates = StepRates(optimizer, config.train.warmup, len(train_batches), config.train.epochs)
    for epoch in range(state.epoch + 1, config.train.epochs + 1):
        stop_reason = state.stop_reason(config.train)
        if stop_reason is not None:
            return stop_reason
        started = time.perf_counter()
        train_batches.set_epoch(epoch)
        train_sums, seconds = _train_epoch(
            trainer, optimizer, train_batches, device, config, epoch, run.progress, governor,
            rates,
        )  # fmt: skip
        val_sums = _validation_sums(model, validation, config.data.max_length, device)
        loss, correct, seen, val_loss, val_correct, val_seen = distributed.all_sum(
            [*train_sums, *val_sums], processes, device
        )
        epoch_seconds, seconds = distributed.all_max(
            [time.perf_counter() - started, seconds], processes, device
        )
        state.step_seconds += seconds
        state.reviews_seen += len(prepared.splits["train"])
        row = {"epoch": epoch, "train_loss": loss / seen, "train_accuracy": correct / seen}
        row["val_loss"] = val_loss / val_seen
        row["val_accuracy"] = val_correct / val_seen
        row["seconds"] = round(epoch_seconds, 2)
        state.train_seconds += epoch_seconds
        improved = state.record(row, model)
        run.log(
            f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
            f"{' (best)' if improved else ''} | {row['seconds']:.0f} s"
        )
        if processes.main:  # the sums above were the barrier: every rank ended the epoch
            save_checkpoint(run.out, model, optimizer, config, state)
        if run.on_epoch is not None:
            # reviews/s of the training steps alone, as the final figure counts them
            pace = len(prepared.splits["train"]) / seconds if seconds else None
            run.on_epoch({**row, "reviews_per_second": pace})
    return "completed all epochs"


def token_noise(train: TrainConfig, prepared: PreparedData, log: Log | None = None) -> TokenNoise:
    """The training batches' word dropout and masking of the domain's own words (see
    :class:`critic.data.batches.TokenNoise`), as ``train`` asks for them."""
    masked = None
    if train.domain_words:
        split = prepared.splits["train"]
        counts = np.bincount(split.tokens, minlength=len(prepared.vocab))
        masked = domain_specific_ids(prepared.vocab.words, counts, train.domain_words)
        if log is not None:
            shown = ", ".join(prepared.vocab.decode(masked[:12].tolist()))
            log(
                f"domain words: {len(masked):,} words masked at {train.domain_word_dropout:.0%} "
                f"in training, the most specific first: {shown}, ..."
            )
    if train.word_dropout and log is not None:
        log(f"word dropout: {train.word_dropout:.0%} of the training words become <unk>")
    return TokenNoise(
        train.word_dropout, masked, train.domain_word_dropout if masked is not None else 0.0
    )


def _neural_result(
    config, model, prepared, device, state: TrainState, stop_reason: str, extra: dict, log: Log
) -> TrainingResult:
    """Measure the best epoch's model on validation and test, calibrate it, and sum up."""
    test = prepared.splits["test"]
    validation = prepared.splits["validation"]
    test_logits = predict_split_logits(model, test, config.data.max_length, device)
    val_logits = predict_split_logits(model, validation, config.data.max_length, device)
    metrics = {
        "model": config.model.name,
        "parameters": extra["parameters"],
        "val_accuracy": state.best_row.get("val_accuracy"),
        "val_loss": state.best_row.get("val_loss"),
        **split_metrics("test", test.labels, test_logits),
        "test_reviews": len(test),
        "train_reviews": len(prepared.splits["train"]),
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "stop_reason": stop_reason,
        "train_seconds": round(state.train_seconds, 2),
        "train_reviews_per_second": round(state.reviews_seen / state.step_seconds, 1)
        if state.step_seconds
        else None,
        "prepare_seconds": prepared.stats.get("prepare_seconds"),
        "embeddings_coverage": extra["embeddings_coverage"],
        "embeddings_seconds": extra["embeddings_seconds"],
        **{k: v for k, v in extra.items() if k.startswith("pretrain_")},
        "device": str(device),
        "processes": extra["processes"],
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
        f"done: {stop_reason}; best epoch {state.best_epoch} of {state.epoch}, "
        f"val accuracy {metrics['val_accuracy']:.4f}, test accuracy {metrics['test_accuracy']:.4f}, "
        f"{state.train_seconds:.0f} s training ({metrics['train_reviews_per_second']} reviews/s)"
    )
    return TrainingResult(config, prepared.vocab, model, metrics, state.history, calibration)


def _load_embeddings(
    config: RunConfig, prepared: PreparedData, cache_dir: Path | None, log: Callable[[str], None]
) -> tuple[EmbeddingInit, RunConfig]:
    """The vocabulary's rows of the embeddings file; the model's embedding size follows it.

    ``word2vec`` instead of a file trains word2vec here, on the training split as the model
    reads it (cut to ``max_length``, words outside the vocabulary as ``<unk>``), with vectors
    of the model's embedding size (or takes them from the cache, where this training split and
    seed trained them before).
    """
    vocab = prepared.vocab
    path = config.train.embeddings
    if path == WORD2VEC:
        train_split = prepared.splits["train"]
        sentences = [vocab.decode(train_split.review(i)) for i in range(len(train_split))]
        settings = Word2VecSettings(dimension=config.model.embedding_dim, seed=config.train.seed)
        vectors = cached_word2vec(sentences, settings, cache_dir or default_cache_dir(), log=log)
    else:
        vectors = load_embeddings(path, keep=vocab.words)
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


def _validation_sums(model, validation, max_length: int, device) -> tuple[float, int, int]:
    """Summed log loss, right answers and reviews of (this rank's share of) validation."""
    if len(validation) == 0:
        return 0.0, 0, 0
    probabilities = predict_split(model, validation, max_length, device)
    loss = binary_log_loss(validation.labels, probabilities) * len(validation)
    return loss, int(((probabilities >= 0.5) == validation.labels).sum()), len(validation)


class StepRates:
    """The learning rate of every step: constant, or with ``warmup`` (a share of all the
    steps) a linear rise from 0 and then a linear fall to 0 at the last step.

    The rate is a function of the step's place in the run alone (epoch and batch) and of each
    group's peak, kept in the optimizer's own state: a resumed run takes up the schedule where
    the interrupted one left it.
    """

    def __init__(self, optimizer, warmup: float | None, steps_per_epoch: int, epochs: int):
        self.optimizer = optimizer
        # Each group's full rate is kept in the group itself: it is saved with the optimizer in
        # every checkpoint, where "lr" holds the last step's share of it.
        for group in optimizer.param_groups:
            group.setdefault("peak_lr", group["lr"])
        self.warmup = warmup
        self.steps_per_epoch = steps_per_epoch
        self.total = steps_per_epoch * epochs

    def factor(self, step: int) -> float:
        """The share of each group's rate at ``step`` (0-based, over the whole run)."""
        if self.warmup is None:
            return 1.0
        rising = max(1, round(self.warmup * self.total))
        if step < rising:
            return (step + 1) / rising
        return max(0.0, (self.total - step) / max(1, self.total - rising))

    def set(self, epoch: int, batch: int) -> None:
        """Set the rates for batch ``batch`` (0-based) of epoch ``epoch`` (1-based)."""
        if self.warmup is None:
            return
        share = self.factor((epoch - 1) * self.steps_per_epoch + batch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["peak_lr"] * share


def _train_epoch(
    model, optimizer, batches, device, config, epoch, progress, governor=None, rates=None
) -> tuple[tuple[float, int, int], float]:
    """One pass over ``batches``: (summed loss, right answers, reviews) and the seconds."""
    model.train()
    total_loss = 0.0
    correct = 0
    seen = 0
    started = time.perf_counter()
    bar = progress_bar(batches, f"epoch {epoch}/{config.train.epochs}", progress)
    push = EmbeddingPush(model, config.train.adversarial) if config.train.adversarial else None
    for number, batch in enumerate(bar):
        if rates is not None:
            rates.set(epoch, number)
        batch = batch.to(device)
        logits = model(batch.token_ids, batch.lengths)
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if push is not None:
            with push.pushed():
                pushed = model(batch.token_ids, batch.lengths)
                F.binary_cross_entropy_with_logits(pushed, batch.labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        if governor is not None:
            governor.check()
        size = len(batch.labels)
        total_loss += loss.item() * size
        correct += int(((logits >= 0) == (batch.labels >= 0.5)).sum())
        seen += size
        elapsed = time.perf_counter() - started
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}", reviews_s=f"{seen / elapsed:.0f}", refresh=False
        )
    bar.close()
    if push is not None:
        push.close()
    return (total_loss, correct, seen), time.perf_counter() - started


class EmbeddingPush:
    """Adversarial training's second pass (``--adversarial EPSILON``).

    A forward hook on the model's word embedding keeps the embedded batch of the plain pass
    (and its gradient, once the plain loss is backpropagated); inside :meth:`pushed`, the next
    pass adds ``epsilon * g / ||g||`` to it, ``g`` being that gradient and the norm taken per
    review over all its positions and dimensions. The push is a constant: no gradient flows
    through it (Goodfellow et al.'s fast gradient method), and the pushed loss's gradients add
    to the plain one's before the step. Padding positions have no gradient, so they are not
    pushed. Unlike Miyato et al. the embeddings are not normalised first: the push is relative
    to vectors of the size training gives them.
    """

    def __init__(self, model: torch.nn.Module, epsilon: float):
        embedding = getattr(getattr(model, "module", model), "embedding", None)
        if not isinstance(embedding, torch.nn.Module):
            raise CriticError("adversarial training needs a model with a word embedding")
        self.epsilon = epsilon
        self._embedded: torch.Tensor | None = None
        self._push: torch.Tensor | None = None
        self._handle = embedding.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        if self._push is not None:
            return output + self._push
        if output.requires_grad:
            output.retain_grad()
            self._embedded = output
        return output

    @contextlib.contextmanager
    def pushed(self):
        """The model's next forward pass sees the pushed embeddings."""
        embedded, self._embedded = self._embedded, None
        if embedded is None or embedded.grad is None:
            raise CriticError("adversarial training: the plain pass left no embedding gradient")
        gradient = embedded.grad.detach()
        norms = gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
        self._push = self.epsilon * gradient / norms.view(-1, *[1] * (gradient.dim() - 1))
        try:
            yield
        finally:
            self._push = None

    def close(self) -> None:
        self._handle.remove()
