"""The ONNX Runtime backend: a neural bundle's model exported to ONNX and run by onnxruntime.

``Predictor.load(path, backend="onnx")`` scores with :class:`OnnxScorer`: the model is exported
when the bundle loads, in memory (nothing is written into the bundle, whose manifest signs
every file in it), checked against PyTorch on a batch of reviews of different lengths, and
handed to an ``onnxruntime.InferenceSession``. The graph takes ``token_ids`` (batch, time)
int64 padded with 0 and ``lengths`` (batch,) int64, and returns ``logits`` (batch,) float32 --
the same contract as every model's ``forward``, with batch and time left free -- and
``pooled`` (batch, hidden) float32, what the output layer reads, for the out-of-domain signal
(:mod:`critic.inference.domain`).

Word weights (``explain=True``) still come from the PyTorch model: an ONNX Runtime session
computes no gradients, and the attention models' own word weights are a different graph.

The exporter is PyTorch's TorchScript-based one (``dynamo=False``): it turns ``nn.LSTM`` and
``nn.GRU`` into ONNX's LSTM and GRU operators, with free batch and time axes. (torch 2.13's
dynamo exporter, which also needs onnxscript, failed on most of critic's models: a GRU's
reshape was fixed to the traced length, and any model with two RNN layers or pooling over
time did not get through ``torch.export``.) The training-only fast LSTM
(:mod:`critic.models.fast_lstm`) never runs here: an exported model is in eval mode, where
every recurrent model calls ``nn.LSTM`` / ``nn.GRU``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from critic.errors import CriticError
from critic.fileio import write_text_atomic
from critic.inference.bundle import Bundle
from critic.inference.scoring import NeuralScorer, output_layers, with_pooled

INPUT_NAMES = ["token_ids", "lengths"]
OUTPUT_NAMES = ["logits", "pooled"]
DYNAMIC_AXES = {
    "token_ids": {0: "batch", 1: "time"},
    "lengths": {0: "batch"},
    "logits": {0: "batch"},
    "pooled": {0: "batch"},
}
OPSET = 17
# ONNX Runtime and PyTorch add in different orders; their logits agree to float precision.
TOLERANCE = 1e-5

# Architectures whose forward the exporter cannot reproduce, and why (found by exporting
# each one and comparing its answers with PyTorch's on reviews of different lengths).
UNEXPORTABLE = {
    "minilm": "it packs each batch's word pieces to the batch's own width, a Python number "
    "the exporter would freeze at the example's",
    "ngrams": "its n-gram bag is an nn.EmbeddingBag with padding_idx, which the ONNX "
    "exporter refuses",
    "attention-ngrams": "its n-gram branch is an nn.EmbeddingBag with padding_idx, which the "
    "ONNX exporter refuses",
    "cnn-lstm": "the exporter turns its ceil division of the review length, "
    "-(-steps // pool_size), into a truncating one, which gives wrong shapes for most lengths",
}


# The architectures backend "auto" times on both backends as they load (MeasuredScorer):
# those ONNX Runtime was checked to run with PyTorch's answers (bench/backends.py). The other
# exportable one (bilstm) was not checked, so it stays with PyTorch.
EXPORTABLE_FOR_AUTO = frozenset({"lstm", "gru", "attention"})


class OnnxExportError(CriticError):
    """A model that cannot be run by ONNX Runtime with the same answers as PyTorch."""


def check_exportable(name: str) -> None:
    """An :class:`OnnxExportError` of one line naming the architecture, unless it exports."""
    if name in UNEXPORTABLE:
        raise OnnxExportError(
            f"the {name} model cannot be served with --backend onnx: {UNEXPORTABLE[name]}; "
            f"serve it with --backend torch"
        )


def check_bundle_exportable(path: Path) -> None:
    """:func:`check_exportable` for a bundle's architecture, or every neural member's of an
    ensemble, from its files alone: what ``critic serve --backend onnx`` checks before any
    worker starts."""
    path = Path(path)
    ensemble = path / "ensemble.json"
    if ensemble.is_file():
        for entry in json.loads(ensemble.read_text(encoding="utf-8"))["members"]:
            check_bundle_exportable(path / entry["path"])
        return
    check_exportable(
        json.loads((path / "config.json").read_text(encoding="utf-8"))["model"]["name"]
    )


def _example_batch(vocab_size: int, steps: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, steps) ids and lengths all different: the trace must not fix either axis to 1."""
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(1, vocab_size, (3, steps), generator=generator)
    lengths = torch.tensor([steps, steps // 2 + 1, 1])
    token_ids[torch.arange(steps) >= lengths.unsqueeze(1)] = 0
    return token_ids, lengths


class LogitsAndPooled(torch.nn.Module):
    """A model whose forward also returns what its output layer reads: the graph exported."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.layers = output_layers(model)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor):
        return with_pooled(self.model, self.layers, token_ids, lengths)


def export_model(model: torch.nn.Module, name: str, out: Path | io.BytesIO) -> None:
    """Write ``model`` (in eval mode, on the CPU) as ONNX to a path or a buffer."""
    check_exportable(name)
    example = _example_batch(model.embedding.num_embeddings)
    model = LogitsAndPooled(model).eval()
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and the tracer's notes on nn.LSTM's own
        # shape checks (Python booleans), which do not depend on the input's values.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            out,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET,
            dynamo=False,
        )


def export_bundle(bundle: Bundle, out: Path) -> Path:
    """Write a neural bundle's model to ``out`` (e.g. ``model.onnx``), checked against PyTorch."""
    buffer = io.BytesIO()
    model = bundle.model.cpu().eval()
    export_model(model, bundle.config.model.name, buffer)
    check_session(new_session(buffer.getvalue()), model, bundle.config.model.name)
    Path(out).write_bytes(buffer.getvalue())
    return Path(out)


def new_session(onnx_bytes: bytes, threads: int | None = None):
    """An ONNX Runtime session on the CPU, with as many threads as PyTorch uses here."""
    try:
        import onnxruntime
    except ImportError:
        raise CriticError("--backend onnx needs onnxruntime: pip install 'critic[onnx]'") from None
    options = onnxruntime.SessionOptions()
    # The same number of threads as torch: whoever set torch's (the server, per worker)
    # meant it for inference whichever backend runs it.
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run_session(session, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(batch,) float32 logits of a padded (batch, time) int64 batch."""
    return session.run(OUTPUT_NAMES[:1], {"token_ids": token_ids, "lengths": lengths})[0]


def run_session_pooled(
    session, token_ids: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(batch,) logits and (batch, hidden) pooled representations, float32."""
    logits, pooled = session.run(OUTPUT_NAMES, {"token_ids": token_ids, "lengths": lengths})
    return logits, pooled


def check_session(session, model: torch.nn.Module, name: str) -> None:
    """Refuse a graph whose logits differ from PyTorch's on reviews of 1 to 13 tokens."""
    token_ids, lengths = _example_batch(model.embedding.num_embeddings, steps=13)
    with torch.no_grad():
        expected = model(token_ids, lengths).numpy()
    got = run_session(session, token_ids.numpy(), lengths.numpy())
    if not np.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
        worst = float(np.abs(got - expected).max())
        raise OnnxExportError(
            f"the {name} model exported to ONNX answers differently from PyTorch "
            f"(by up to {worst:.2g}); serve it with --backend torch"
        )


class OnnxScorer(NeuralScorer):
    """:class:`~critic.inference.scoring.NeuralScorer` whose logits come from ONNX Runtime.

    Same tokens, same length-sorted batches, same padding; word weights from the PyTorch
    model (ONNX Runtime has no gradients).
    """

    def __init__(self, bundle: Bundle, batch_size: int = 64):
        super().__init__(bundle, batch_size)
        if self.device.type != "cpu":
            raise CriticError(f"--backend onnx runs on the CPU, not on {self.device.type}")
        buffer = io.BytesIO()
        export_model(self.model, bundle.config.model.name, buffer)
        self.session = new_session(buffer.getvalue())
        check_session(self.session, self.model, bundle.config.model.name)

    def batch_logits(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        return run_session(self.session, token_ids.numpy(), lengths.numpy())

    def batch_outputs(
        self, token_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        logits, pooled = run_session_pooled(self.session, token_ids.numpy(), lengths.numpy())
        return logits.astype(np.float64), pooled.astype(np.float64)


# The batch sizes "auto" times both backends at, and the review length it times them with (a
# median IMDB review is about 230 words).
MEASURED_SIZES = (1, 8, 32, 64)
MEASURED_STEPS = 250


def time_backends(
    scorer: OnnxScorer, sizes: tuple[int, ...] = MEASURED_SIZES, budget_s: float = 0.5
) -> dict[int, tuple[float, float]]:
    """Seconds a batch takes with PyTorch and with ONNX Runtime, per batch size: the faster of
    a few tries each, taking turns, on reviews of :data:`MEASURED_STEPS` random words, with
    the threads this process gives them. About ``budget_s`` in all."""
    generator = torch.Generator().manual_seed(0)
    vocab_size = scorer.model.embedding.num_embeddings
    steps = min(MEASURED_STEPS, scorer.max_length)
    timings: dict[int, tuple[float, float]] = {}
    for size in sizes:
        token_ids = torch.randint(1, vocab_size, (size, steps), generator=generator)
        lengths = torch.full((size,), steps, dtype=torch.int64)
        ids, lens = token_ids.numpy(), lengths.numpy()

        def with_torch(token_ids=token_ids, lengths=lengths) -> None:
            with torch.no_grad():
                scorer.model(token_ids, lengths)

        def with_onnx(ids=ids, lens=lens) -> None:
            run_session(scorer.session, ids, lens)

        best = [float("inf"), float("inf")]
        tries, started = 0, time.perf_counter()
        share = budget_s / len(sizes)
        while tries < 3 or (tries < 20 and time.perf_counter() - started < share):
            for index, run in enumerate((with_torch, with_onnx)):
                begun = time.perf_counter()
                run()
                best[index] = min(best[index], time.perf_counter() - begun)
            tries += 1
        timings[size] = (best[0], best[1])
    return timings


TIMINGS_KEPT_S = 24 * 3600  # a day: the machine, its load and its software may change


def _timings_file(scorer: OnnxScorer, cache_dir: Path) -> Path:
    """Where the timings of this architecture on this machine are kept: a model's speed
    depends on its shape (architecture, sizes, review length), the CPU, the threads and the
    two libraries' versions, not on its weights -- one measurement serves every bundle of the
    same shape (every worker of an endpoint, a retrained model)."""
    import onnxruntime

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line for line in info if line.startswith("model name")), "")
    except OSError:
        cpu = ""
    shape = {
        "model": dataclasses.asdict(scorer.bundle.config.model),
        "max_length": scorer.max_length,
        "vocab": scorer.model.embedding.num_embeddings,
        "threads": torch.get_num_threads(),
        "cpu": cpu.strip(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sizes": MEASURED_SIZES,
        "steps": MEASURED_STEPS,
    }
    key = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cache_dir) / "backends" / f"{key[:24]}.json"


def remembered_timings(
    scorer: OnnxScorer, cache_dir: Path | None
) -> tuple[dict[int, tuple[float, float]], float | None]:
    """The timings of :func:`time_backends` for this scorer's shape on this machine, and when
    they were measured: read from ``cache_dir`` when measured there less than a day ago (the
    measured time then), else measured now and kept there (None)."""
    if cache_dir is None:
        return time_backends(scorer), None
    path = _timings_file(scorer, cache_dir)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if time.time() - float(kept["measured_at"]) < TIMINGS_KEPT_S:
            timings = {int(size): (float(t), float(o)) for size, (t, o) in kept["timings"].items()}
            return timings, float(kept["measured_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: measure
    timings = time_backends(scorer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"measured_at": time.time(), "timings": {str(k): v for k, v in timings.items()}}
        write_text_atomic(path, json.dumps(record))
    except OSError:
        pass  # a read-only cache: measured each time
    return timings, None


class MeasuredScorer(OnnxScorer):
    """Backend ``auto`` for a model ONNX Runtime can run: both backends kept, each batch run by
    the one measured faster at its size on this machine, with this process's threads.

    Which is faster depends on the machine and the batch: on one 2-core machine ONNX Runtime
    scored a lone lstm review in 0.51 ms against PyTorch's 0.73, but batches of 64 at 3,361
    reviews/s against 4,251 (issue 25). So it is measured when the model loads (about half a
    second) rather than decided by a rule. Both answer the same to :data:`TOLERANCE`
    (:func:`check_session`). ``timings`` (size -> (torch s, onnx s)) skips the measuring."""

    def __init__(
        self,
        bundle: Bundle,
        batch_size: int = 64,
        timings: dict[int, tuple[float, float]] | None = None,
        cache_dir: Path | None = None,
    ):
        super().__init__(bundle, batch_size)
        self.bundle = bundle
        self.measured_at: float | None = None
        """When the timings were measured, if earlier than now (kept in ``cache_dir``)."""
        if timings is None:
            timings, self.measured_at = remembered_timings(self, cache_dir)
        self.timings = timings
        self._sizes = sorted(self.timings)

    def uses_onnx(self, size: int) -> bool:
        """Whether a batch of ``size`` reviews runs on ONNX Runtime: as measured at the
        smallest measured size at least as large (the largest beyond them)."""
        nearest = next((s for s in self._sizes if s >= size), self._sizes[-1])
        torch_s, onnx_s = self.timings[nearest]
        return onnx_s < torch_s

    def choice(self) -> str:
        """What runs which batches, and the times that decided it: the start-up line."""
        onnx = [s for s in self._sizes if self.uses_onnx(s)]
        plain = [s for s in self._sizes if not self.uses_onnx(s)]
        parts = []
        if onnx:
            parts.append(f"ONNX Runtime for batches of {_sizes(onnx)}")
        if plain:
            parts.append(f"PyTorch for {_sizes(plain)}")
        measured = "; ".join(
            f"{size}: {torch_s * 1e3:.2f} vs {onnx_s * 1e3:.2f} ms"
            for size, (torch_s, onnx_s) in sorted(self.timings.items())
        )
        when = (
            "here"
            if self.measured_at is None
            else time.strftime("here at %Y-%m-%d %H:%M", time.localtime(self.measured_at))
        )
        return (
            f"{', '.join(parts)} (measured {when}, PyTorch vs ONNX Runtime per batch: {measured})"
        )

    def batch_logits(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        if self.uses_onnx(len(token_ids)):
            return super().batch_logits(token_ids, lengths)
        return NeuralScorer.batch_logits(self, token_ids, lengths)

    def batch_outputs(
        self, token_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.uses_onnx(len(token_ids)):
            return super().batch_outputs(token_ids, lengths)
        return NeuralScorer.batch_outputs(self, token_ids, lengths)


def _sizes(sizes: list[int]) -> str:
    return ", ".join(str(size) for size in sizes) + (" review" if sizes == [1] else " reviews")


def preferred_scorer(bundle: Bundle, batch_size: int = 64) -> NeuralScorer:
    """Backend ``auto``: :class:`MeasuredScorer` for an architecture ONNX Runtime runs with the
    same answers, on the CPU, when onnxruntime is installed; else PyTorch's
    :class:`NeuralScorer`."""
    on_cpu = next(bundle.model.parameters()).device.type == "cpu"
    if (
        bundle.config.model.name in EXPORTABLE_FOR_AUTO
        and on_cpu
        and importlib.util.find_spec("onnxruntime") is not None
    ):
        from critic.data.prepare import default_cache_dir

        return MeasuredScorer(bundle, batch_size, cache_dir=default_cache_dir())
    return NeuralScorer(bundle, batch_size)
