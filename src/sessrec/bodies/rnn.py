"""Recurrent bodies: GRU and LSTM (the paper's "GRU (CLM)" row), behind the transformer interface.

As in the original meta-architecture: ``n_layer`` stacked cells of hidden size ``d_model`` over the
projected interactions, with ``dropout`` between layers; here also on the output, so that
``dropout`` acts with a single layer too. A recurrent body is causal by construction; attention
settings (``n_head``, ``hidden_act``, ``layer_norm_eps``, ``initializer_range``) do not apply to it
(PyTorch's default initialisation is kept).
"""

from __future__ import annotations

import torch
from torch import nn

from sessrec.bodies.registry import register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError


class RNNBody(nn.Module):
    supports_causal = True
    supports_bidirectional = False

    def __init__(self, cfg: ExperimentConfig, cell: type[nn.RNNBase]):
        super().__init__()
        if cfg.model_config:
            raise SessrecError(f"model_config is not used by model_type {cfg.model_type}: remove {sorted(cfg.model_config)}")
        self.rnn = cell(cfg.d_model, cfg.d_model, num_layers=cfg.n_layer, batch_first=True,
                        dropout=cfg.dropout if cfg.n_layer > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True, **kwargs) -> torch.Tensor:
        if not causal:
            raise SessrecError("gru/lstm bodies are causal (left to right): use them with task clm")
        # Sessions are right-padded: the outputs at real positions never depend on the padding after them.
        return self.dropout(self.rnn(x)[0])


register("gru")(lambda cfg: RNNBody(cfg, nn.GRU))
register("lstm")(lambda cfg: RNNBody(cfg, nn.LSTM))
