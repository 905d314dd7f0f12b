"""BERT-family encoders from ``transformers``: BERT, ALBERT, ELECTRA, fed with ``inputs_embeds``.

They are bidirectional; they also run causally (CLM) with an explicit lower-triangular attention
mask. Their embedding block adds learned absolute position embeddings (and a constant
token-type embedding) to the inputs, then LayerNorm and dropout, as in the original system.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sessrec.bodies.attention import attention_mask_4d
from sessrec.bodies.hf import NO_TOKENS, hf_config
from sessrec.bodies.registry import register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

SIZES = ("hidden_size", "embedding_size")  # the inputs are d_model wide


def encoder_values(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config fields BERT, ALBERT and ELECTRA share; ``dropout`` sets every dropout of the body."""
    return dict(
        hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
        intermediate_size=4 * cfg.d_model, hidden_act=cfg.hidden_act, hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout, max_position_embeddings=cfg.session_seq_length_max + 2,
        type_vocab_size=1, initializer_range=cfg.initializer_range, layer_norm_eps=cfg.layer_norm_eps, **NO_TOKENS,
    )


class EncoderBody(nn.Module):
    """A ``transformers`` encoder: bidirectional, or causal through an explicit 4D attention mask."""

    supports_causal = True
    supports_bidirectional = True

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = False, **kwargs) -> torch.Tensor:
        mask = attention_mask_4d(padding_mask, True, x.dtype) if causal else padding_mask
        return self.model(inputs_embeds=x, attention_mask=mask, **kwargs).last_hidden_state


@register("bert")
def build_bert(cfg: ExperimentConfig) -> nn.Module:
    """BERT (Devlin et al., 2019)."""
    import transformers  # imported when used: +70 MB resident for every run otherwise

    config = hf_config(transformers.BertConfig, encoder_values(cfg), cfg.model_config, "bert", SIZES)
    return EncoderBody(transformers.BertModel(config, add_pooling_layer=False))


@register("albert")
def build_albert(cfg: ExperimentConfig) -> nn.Module:
    """ALBERT (Lan et al., 2020): ``num_hidden_groups`` groups of layer weights shared along the
    ``n_layer`` layers (-1 = one group per layer, i.e. no sharing: the paper's "BERT (MLM)" row), each
    group being ``inner_group_num`` distinct layers (so the depth is ``n_layer * inner_group_num``)."""
    groups = cfg.n_layer if cfg.num_hidden_groups == -1 else cfg.num_hidden_groups
    if not 1 <= groups <= cfg.n_layer:
        raise SessrecError(f"num_hidden_groups must be -1 or between 1 and n_layer={cfg.n_layer} (got {cfg.num_hidden_groups})")
    values = dict(encoder_values(cfg), embedding_size=cfg.d_model, num_hidden_groups=groups, inner_group_num=cfg.inner_group_num)
    import transformers  # imported when used: +70 MB resident for every run otherwise

    config = hf_config(transformers.AlbertConfig, values, cfg.model_config, "albert", SIZES)
    return EncoderBody(transformers.AlbertModel(config, add_pooling_layer=False))


@register("electra")
def build_electra(cfg: ExperimentConfig) -> nn.Module:
    """ELECTRA (Clark et al., 2020), the discriminator architecture (the RTD objective adds the rest)."""
    values = dict(encoder_values(cfg), embedding_size=cfg.d_model)
    import transformers  # imported when used: +70 MB resident for every run otherwise

    config = hf_config(transformers.ElectraConfig, values, cfg.model_config, "electra", SIZES)
    return EncoderBody(transformers.ElectraModel(config))
