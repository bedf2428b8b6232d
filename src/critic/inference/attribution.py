"""How much each token of a review pushed a neural model's logit, and which way.

Pure functions over a model (or its scoring function), a padded batch of token ids and their
lengths; each returns (batch, time) signed scores, 0 on padding, before any scaling:

* :func:`leave_one_out` -- the fall in the logit when that token alone is deleted from the
  review (occlusion by deletion, Li et al. 2016 "Understanding neural networks through
  representation erasure"). It asks the model the question a reader asks ("what if this word
  were not there?"); ``widths`` adds windows of several words, each window's fall shared by
  its words;
* :func:`greedy_deletion` -- leave-one-out, then the few tokens that, deleted *together*, move
  the logit furthest, chosen one at a time among the strongest candidates (each round deletes
  the candidate that moves it most once the ones chosen before are gone): a model that reads
  "superb" and "wonderful" as saying the same thing loses little when either alone is
  deleted, and leave-one-out then ranks both low. What critic serves for every neural model;
* :func:`gradient_x_input` -- the gradient of the logit at each word vector, dotted with that
  vector: one backward pass, a first-order guess at the same question (what critic served
  before);
* :func:`integrated_gradients` -- gradients averaged along the path from a baseline review to
  the real one (Sundararajan et al. 2017).

docs/benchmarks.md ("Word weights") measures which of them names the words that drove the
answer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from critic.data.vocab import PAD_ID, UNK_ID

# Rows (variants of reviews, or reviews x alphas) in one forward pass: an RNN's cost lies in
# its steps through time far more than in its batch, so wide passes are cheap per row.
ROWS_PER_PASS = 256
IG_STEPS = 16

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | np.ndarray"]
"""(token_ids (batch, time), lengths (batch,)) -> (batch,) logits."""


@contextlib.contextmanager
def gradients_in_eval_mode():
    """Gradients through a model in eval mode (for word weights), whatever its kernels.

    oneDNN's and cuDNN's RNN kernels refuse a backward pass in eval mode; PyTorch's native
    kernels give the same forward values and do allow it.
    """
    with warnings.catch_warnings(), torch.enable_grad():
        # mkldnn.flags() also re-sets oneDNN's TF32 switch, which warns on every call that this
        # build has no Intel GPU support: noise, not news.
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
            yield


def _windows(length: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The variants of one review with each window of ``width`` tokens deleted, as positions
    to keep, (windows, length - width), and each window's first position, (windows,)."""
    starts = np.arange(length - width + 1)
    kept = np.arange(length - width)
    # Row s keeps positions 0..s-1, then s+width..: kept j maps to j, or j+width past the gap.
    return kept + width * (kept[None, :] >= starts[:, None]), starts


def _score_rows(score: ScoreFunction, rows: list[torch.Tensor], rows_per_pass: int, device):
    """(rows,) float64 logits of variable-length rows of token ids, in padded passes."""
    found = []
    for start in range(0, len(rows), rows_per_pass):
        chunk = rows[start : start + rows_per_pass]
        chunk_lengths = torch.tensor([len(row) for row in chunk])
        padded = torch.full((len(chunk), int(chunk_lengths.max())), PAD_ID, dtype=chunk[0].dtype)
        for index, row in enumerate(chunk):
            padded[index, : len(row)] = row
        after = score(padded.to(device), chunk_lengths.to(device))
        found.append(torch.as_tensor(after, dtype=torch.float64).cpu())
    return torch.cat(found) if found else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def leave_one_out(
    score: ScoreFunction,
    token_ids: torch.Tensor,
    lengths: torch.Tensor,
    widths: Sequence[int] = (1,),
    rows_per_pass: int = ROWS_PER_PASS,
) -> torch.Tensor:
    """(batch, time) float64: the fall in each review's logit when each token is deleted.

    With ``widths=(1,)``, token t's score is ``f(x) - f(x without t)``, exactly what deleting
    it does to the answer. With wider windows too, every window of each width is deleted in
    turn, a token's score for a width is the mean fall of the windows that hold it, and its
    score is the mean over the widths: a way to see "not" in "not good", whose words may each
    matter little alone. A review no longer than a window, deleted whole, reads as one unknown
    token (what a review of no words is scored as). ``score`` is the model's logit function (a
    forward pass, or another backend's); it is called on batches of at most ``rows_per_pass``
    variants, each as long as its review less the window, so a review of n tokens costs about
    ``len(widths) * n`` reviews' forward passes.
    """
    batch, steps = token_ids.shape
    device = token_ids.device
    full = torch.as_tensor(score(token_ids, lengths), dtype=torch.float64).cpu()  # (batch,)
    ids = token_ids.cpu()
    # Every variant: its ids, its review, the slot of its width, the positions it deletes.
    variants: list[tuple[torch.Tensor, int, int, int, int]] = []
    for review, length in enumerate(int(n) for n in lengths.cpu()):
        for slot, width in enumerate(widths):
            if length <= width:
                variants.append((torch.tensor([UNK_ID], dtype=ids.dtype), review, slot, 0, length))
                continue
            kept, starts = _windows(length, width)
            rows = ids[review, torch.from_numpy(kept)]  # (windows, length - width)
            variants += [
                (row, review, slot, int(first), int(first) + width)
                for row, first in zip(rows, starts, strict=True)
            ]
    sums = torch.zeros(len(widths), batch, steps, dtype=torch.float64)
    counts = torch.zeros(len(widths), batch, steps, dtype=torch.float64)
    after = _score_rows(score, [variant[0] for variant in variants], rows_per_pass, device)
    for fall, (_, review, slot, first, end) in zip(
        (full[[v[1] for v in variants]] - after).tolist(), variants, strict=True
    ):
        sums[slot, review, first:end] += fall
        counts[slot, review, first:end] += 1
    return (sums / counts.clamp(min=1)).mean(0)


GREEDY_WORDS = 5
GREEDY_POOL = 20


@torch.no_grad()
def greedy_deletion(
    score: ScoreFunction,
    token_ids: torch.Tensor,
    lengths: torch.Tensor,
    words: int = GREEDY_WORDS,
    pool: int = GREEDY_POOL,
    rows_per_pass: int = ROWS_PER_PASS,
    settle: bool = True,
    beam: int = 1,
) -> torch.Tensor:
    """(batch, time) float64: leave-one-out, with the ``words`` tokens that move the logit
    furthest when deleted together found one round at a time and weighed together.

    The ``pool`` tokens whose deletion alone pushes hardest against the label the model gave
    are the candidates. ``words`` rounds follow: each deletes, from the review less the tokens
    chosen so far, every remaining candidate in turn and keeps the one that moves the logit
    furthest. Then, settled, every candidate is weighed once more in one context: its fall
    with the other chosen tokens gone (a chosen token's, the review less the others chosen
    against the review less all of them; another candidate's, the review less every chosen
    token against that less it too). Two words that say the same thing ("superb",
    "wonderful") then both weigh what each carries once the other is gone, so the tokens the
    rounds found are the strongest, as the deletion test asks of them. Unsettled
    (``settle=False``), a candidate keeps its fall the last time it was tried -- a chosen
    token's, its fall once the tokens chosen before it were gone -- and a later one may
    outweigh one chosen earlier that made it matter. The other tokens keep their
    leave-one-out fall. It costs leave-one-out plus about ``(words * beam + 1) * pool``
    forward passes of a review.

    ``beam`` > 1 is a beam search: each round keeps the ``beam`` sets of tokens that, deleted,
    move the logit furthest, and grows each by every candidate; the best set of ``words`` is
    the one chosen (a candidate's unsettled weight is its fall from the best set kept before
    that round). A benchmark of how far the one-at-a-time rounds are from a wider search
    (docs/benchmarks.md), not what critic serves: it costs ``beam`` times the rounds.
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    singles = leave_one_out(score, token_ids, lengths, rows_per_pass=rows_per_pass)
    weights = singles.clone()
    full = torch.as_tensor(score(token_ids, lengths), dtype=torch.float64).cpu()
    side = torch.where(full >= 0, 1.0, -1.0).to(torch.float64)
    ids = token_ids.cpu()
    counts = [int(n) for n in lengths.cpu()]
    candidates = [
        [int(t) for t in torch.argsort(-(side[b] * singles[b, :n]), stable=True)[: min(pool, n)]]
        for b, n in enumerate(counts)
    ]
    # Per review, the sets kept, best first: (tokens chosen in order, logit with them deleted).
    sets: list[list[tuple[tuple[int, ...], float]]] = [
        [((), float(full[b]))] for b in range(len(counts))
    ]
    for _ in range(min(words, pool)):
        rows, owners = [], []
        for b, n in enumerate(counts):
            grown: set[frozenset[int]] = set()  # a set reached from two kept sets is tried once
            for rank, (chosen, _) in enumerate(sets[b]):
                if n - len(chosen) <= 1:  # a review is never deleted whole
                    continue
                for token in candidates[b]:
                    gone = frozenset((*chosen, token))
                    if token in chosen or gone in grown:
                        continue
                    grown.add(gone)
                    rows.append(ids[b, [t for t in range(n) if t not in gone]])
                    owners.append((b, rank, token))
        if not rows:
            break
        found: dict[int, list[tuple[float, tuple[int, ...], float]]] = {}
        for after, (b, rank, token) in zip(
            _score_rows(score, rows, rows_per_pass, token_ids.device).tolist(), owners, strict=True
        ):
            chosen, before = sets[b][rank]
            if rank == 0:
                weights[b, token] = before - after
            found.setdefault(b, []).append((float(side[b]) * -after, (*chosen, token), after))
        for b, options in found.items():
            options.sort(key=lambda option: -option[0])  # stable: the first tried wins a tie
            sets[b] = [(chosen, after) for _, chosen, after in options[:beam]]
    if settle:
        chosen = [list(kept[0][0]) for kept in sets]
        now = torch.tensor([kept[0][1] for kept in sets], dtype=torch.float64)
        _settle(
            score, ids, counts, candidates, chosen, now, weights, rows_per_pass, token_ids.device
        )
    return weights


def _settle(score, ids, counts, candidates, chosen, now, weights, rows_per_pass, device) -> None:
    """Weigh every candidate again in one context: its fall with the other chosen tokens
    deleted (a chosen token's: the review less the others chosen, less it too; another
    candidate's: the review less every chosen token, less it too), in place."""
    rows, owners = [], []
    for b, n in enumerate(counts):
        picked = set(chosen[b])
        for token in candidates[b]:
            gone = picked - {token} if token in picked else {*picked, token}
            if n - len(gone) < 1:  # only ever another candidate: a review is never emptied
                continue
            rows.append(ids[b, [t for t in range(n) if t not in gone]])
            owners.append((b, token, token in picked))
    if not rows:
        return
    for after, (b, token, was_chosen) in zip(
        _score_rows(score, rows, rows_per_pass, device).tolist(), owners, strict=True
    ):
        # now[b]: the logit with every chosen token deleted.
        weights[b, token] = after - float(now[b]) if was_chosen else float(now[b]) - after


def gradient_x_input(model: nn.Module, token_ids: torch.Tensor, lengths: torch.Tensor):
    """(batch, time): each word vector dotted with the logit's gradient there; 0 on padding.

    ``model`` is in eval mode and has an ``embedding``. No gradients are left behind.
    """
    return integrated_gradients(model, token_ids, lengths, alphas=[1.0])


def integrated_gradients(
    model: nn.Module,
    token_ids: torch.Tensor,
    lengths: torch.Tensor,
    steps: int = IG_STEPS,
    alphas: Sequence[float] | None = None,
    baseline_id: int | None = None,
) -> torch.Tensor:
    """(batch, time) each token's share of its review's logit, by integrated gradients.

    From a baseline review whose every real token's vector is zero (``baseline_id=None``) or
    the vector of ``baseline_id`` (e.g. ``UNK_ID``): ``(x_t - b) . mean_k grad f(b + alpha_k
    (x - b))`` at the midpoints ``alpha_k = (k + 1/2) / steps``; the shares add up to ``f(x) -
    f(b)`` as the steps grow. ``alphas=[1.0]`` is plain gradient x input (whatever the
    baseline: ``x_t . grad f(x)`` then). ``model`` is in eval mode and has an ``embedding``;
    padding gets 0 and keeps its own vector.
    """
    alphas = [(k + 0.5) / steps for k in range(steps)] if alphas is None else list(alphas)
    plain = alphas == [1.0]
    batch = token_ids.size(0)
    real = (token_ids != PAD_ID).unsqueeze(2)  # (batch, time, 1)
    group = max(1, ROWS_PER_PASS // batch)  # alphas that share a pass, each review repeated
    captured: dict[str, torch.Tensor] = {}

    def along_the_path(module, inputs, output):
        embedded = output[:batch].detach()  # (batch, time, embedding)
        if baseline_id is None or plain:
            base = torch.zeros_like(embedded)
        else:
            base = module.weight[baseline_id].detach().expand_as(embedded) * real
        captured["difference"] = embedded - base if not plain else embedded
        repeats = output.size(0) // batch
        output = base.repeat(repeats, 1, 1) + captured["alpha"] * (
            output - base.repeat(repeats, 1, 1)
        )
        output.retain_grad()
        captured["scaled"] = output
        return output

    hook = model.embedding.register_forward_hook(along_the_path)
    total = torch.zeros((), device=token_ids.device)
    try:
        with gradients_in_eval_mode():
            for start in range(0, len(alphas), group):
                chunk = torch.tensor(alphas[start : start + group], device=token_ids.device)
                captured["alpha"] = chunk.repeat_interleave(batch).view(-1, 1, 1)
                rows = model(token_ids.repeat(len(chunk), 1), lengths.repeat(len(chunk)))
                rows.sum().backward()  # each row's logit depends on that row only
                grad = captured["scaled"].grad  # (chunk * batch, time, embedding)
                total = total + grad.view(len(chunk), batch, *grad.shape[1:]).sum(0)
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    shares = (captured["difference"] * total / len(alphas)).sum(-1)  # (batch, time)
    return shares.masked_fill(token_ids == PAD_ID, 0.0).detach()
