"""Recurrent classifiers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from critic.config import ModelConfig
from critic.data.vocab import PAD_ID
from critic.models.fast_lstm import lstm_layer
from critic.models.registry import register


def last_real_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(batch, time, hidden) -> (batch, hidden): each review's output at its last real token.

    Padding comes after the text, so in a forward RNN the state at the last real token has
    never seen a padding step: length-bucketed batches need no packing.
    """
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.size(2))
    return outputs.gather(1, index).squeeze(1)


def init_forget_bias(lstm: nn.LSTM, value: float = 1.0) -> None:
    """Start the forget gates open (bias 1, Jozefowicz et al. 2015).

    With PyTorch's default (about 0) the cell forgets half of itself each step, so early in
    training nothing said 200 tokens before the end reaches the output: the model first learns
    from the last few words only, and learns long reviews slowly.
    """
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_ih"):
                hidden = bias.shape[0] // 4
                bias[hidden : 2 * hidden].fill_(value)
            elif name.startswith("bias_hh"):
                hidden = bias.shape[0] // 4
                bias[hidden : 2 * hidden].zero_()


@register("lstm")
class LSTMClassifier(nn.Module):
    """The reference model: embedding, LSTM, the output at the last real token, one logit.

    With the reference settings (vocabulary 5,000, embedding 32, hidden 100) this is the model
    of the well-known SageMaker sentiment project: 213,701 parameters.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_dim, 1)
        init_forget_bias(self.lstm)

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(token_ids))  # (batch, time, embedding)
        if self.training and embedded.device.type == "cpu" and torch.is_grad_enabled():
            outputs = self._fast_cpu_lstm(embedded)
        else:
            outputs, _ = self.lstm(embedded)  # (batch, time, hidden)
        final = last_real_step(outputs, lengths)  # (batch, hidden)
        return self.output(self.dropout(final)).squeeze(1)  # (batch,)

    def _fast_cpu_lstm(self, embedded: torch.Tensor) -> torch.Tensor:
        layer_input = embedded.transpose(0, 1)  # (time, batch, features)
        for layer in range(self.lstm.num_layers):
            if layer > 0:
                layer_input = F.dropout(layer_input, self.lstm.dropout, self.training)
            layer_input = lstm_layer(
                layer_input,
                getattr(self.lstm, f"weight_ih_l{layer}"),
                getattr(self.lstm, f"weight_hh_l{layer}"),
                getattr(self.lstm, f"bias_ih_l{layer}"),
                getattr(self.lstm, f"bias_hh_l{layer}"),
            )
        return layer_input.transpose(0, 1)  # (batch, time, hidden)
