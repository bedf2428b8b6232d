"""Language-model pre-training on the training split's texts (``--pretrain-epochs N``).

Before the classifier sees a label, its embedding and word encoder learn to predict each
review's next word (forward direction) and previous word (backward direction): see
:mod:`critic.models.language_model`. Only the training split's texts are read -- the
validation and test reviews stay unseen, so the figures measured on them stay honest -- and
no validation loss is computed: the number of epochs is fixed by the recipe.

Pre-training is not checkpointed: it runs before the classifier's first epoch, and a run
resumed from a checkpoint already carries its effect in the weights. Under torchrun the
language model trains data-parallel too, its gradients averaged over the ranks every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from critic.config import RunConfig
from critic.data.batches import BucketedBatches
from critic.data.prepare import PreparedData
from critic.models.language_model import EncoderLanguageModel
from critic.training import distributed
from critic.training.distributed import Processes
from critic.training.run import progress_bar


def pretrain_language_model(
    model: torch.nn.Module,
    config: RunConfig,
    prepared: PreparedData,
    device: torch.device,
    processes: Processes,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_step: Callable[[], None] | None = None,
) -> dict:
    """Train ``model``'s embedding and word encoder as a language model, in place.
    ``on_step`` is called after each optimiser step (the run's ThreadGovernor).

    Returns the figures the bundle's metrics keep: epochs, seconds, and the last epoch's
    training loss (nats per word) and perplexity.
    """
    train = config.train
    language_model = EncoderLanguageModel(model, config.model.name, config.model.dropout)
    language_model.to(device)
    # Not DDP: its hooks would stay on the embedding and encoder the classifier then trains.
    distributed.broadcast_parameters(language_model, processes)
    optimizer = torch.optim.Adam(language_model.parameters(), lr=train.learning_rate)
    batches = BucketedBatches(
        prepared.splits["train"],
        train.batch_size,
        config.data.max_length,
        pool_batches=train.pool_batches,
        # Other batches than the classifier's first epoch will see, from the same seed.
        seed=train.seed + 1_000_003,
        shard=(processes.rank, processes.world_size),
    )
    started = time.perf_counter()
    loss_per_word = float("nan")
    for epoch in range(1, train.pretrain_epochs + 1):
        epoch_started = time.perf_counter()
        batches.set_epoch(epoch)
        language_model.train()
        total, words = 0.0, 0
        bar = progress_bar(batches, f"pre-train {epoch}/{train.pretrain_epochs}", progress)
        for batch in bar:
            batch = batch.to(device)
            summed, count = language_model(batch.token_ids, batch.lengths)
            optimizer.zero_grad(set_to_none=True)
            if count:  # a batch of one-word reviews has nothing to predict
                (summed / count).backward()
            distributed.average_gradients(language_model, processes)
            torch.nn.utils.clip_grad_norm_(language_model.parameters(), train.grad_clip)
            optimizer.step()
            if on_step is not None:
                on_step()
            total += float(summed.detach())
            words += count
            bar.set_postfix(loss=f"{total / max(words, 1):.3f}", refresh=False)
        bar.close()
        total, words = distributed.all_sum([total, words], processes, device)
        loss_per_word = total / max(words, 1)
        log(
            f"pre-train epoch {epoch}: language-model loss {loss_per_word:.4f} "
            f"(perplexity {math.exp(min(loss_per_word, 50)):.0f}) over {int(words):,} words "
            f"| {time.perf_counter() - epoch_started:.0f} s"
        )
    (seconds,) = distributed.all_max([time.perf_counter() - started], processes, device)
    return {
        "pretrain_epochs": train.pretrain_epochs,
        "pretrain_seconds": round(seconds, 2),
        "pretrain_loss": round(loss_per_word, 4),
        "pretrain_perplexity": round(math.exp(min(loss_per_word, 50)), 1),
    }
