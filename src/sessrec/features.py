"""Interaction representations: item-id embeddings plus, optionally, side-information features.

``FeatureEmbedding`` turns a batch of padded feature tensors into ``[B, L, output_dim]``; the
``InputProjection`` then maps that to ``d_model`` (the original ``inp_merge``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch
from sessrec.errors import SessrecError
from sessrec.schema import Schema


def activation(name: str) -> nn.Module:
    return {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "identity": nn.Identity}[name]()


def side_embedding_dim(cardinality: int, multiplier: float) -> int:
    """Size of a non-item categorical embedding: ``ceil(cardinality ** 0.25 * multiplier)``."""
    return int(math.ceil(cardinality**0.25 * multiplier))


class FeatureEmbedding(nn.Module):
    """Embeds the item id and the side features of each interaction and concatenates them."""

    def __init__(self, schema: Schema, cfg: ExperimentConfig):
        super().__init__()
        self.item_key = schema.item_id.name
        feats = schema.model_features(cfg.use_side_information_features)
        self.item_table = nn.Embedding(schema.n_items, cfg.item_dim, padding_idx=0)
        nn.init.normal_(self.item_table.weight, 0.0, cfg.item_id_embeddings_init_std)
        self.categorical = nn.ModuleDict()
        self.continuous: list[str] = []
        for f in feats:
            if f.is_item_id:
                continue
            if f.is_categorical:
                if f.cardinality is None:
                    raise SessrecError(f"schema: categorical feature '{f.name}' has no int_domain max (cardinality unknown)")
                dim = side_embedding_dim(f.cardinality, cfg.embedding_dim_from_cardinality_multiplier)
                table = nn.Embedding(f.cardinality, dim, padding_idx=0)
                nn.init.normal_(table.weight, 0.0, cfg.other_embeddings_init_std)
                self.categorical[f.name] = table
            elif f.is_continuous:
                self.continuous.append(f.name)
        self.output_dim = cfg.item_dim + sum(t.embedding_dim for t in self.categorical.values()) + len(self.continuous)

    @property
    def input_names(self) -> list[str]:
        return [self.item_key, *self.categorical, *self.continuous]

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.item_table(batch[self.item_key])]
        parts += [table(batch[name]) for name, table in self.categorical.items()]
        parts += [batch[name].unsqueeze(-1).to(parts[0].dtype) for name in self.continuous]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


class InputProjection(nn.Module):
    """``inp_merge``: ``mlp`` = activation(Linear(dropout(x))), ``identity`` = x (needs output_dim == d_model)."""

    def __init__(self, input_dim: int, cfg: ExperimentConfig):
        super().__init__()
        self.norm = nn.LayerNorm(input_dim) if cfg.layer_norm_all_features else nn.Identity()
        self.dropout = nn.Dropout(cfg.input_dropout)
        if cfg.inp_merge == "identity":
            if input_dim != cfg.d_model:
                raise SessrecError(
                    f"inp_merge identity needs the input features to have d_model={cfg.d_model} dims, they have {input_dim}; use inp_merge mlp"
                )
            self.proj: nn.Module = nn.Identity()
        else:
            self.proj = nn.Sequential(nn.Linear(input_dim, cfg.d_model), activation(cfg.tf_out_activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(self.norm(x)))
