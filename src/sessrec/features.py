"""Interaction representations: item-id embeddings plus, optionally, side-information features.

``FeatureEmbedding`` turns a batch of padded feature tensors into ``[B, L, output_dim]``; the
``InputProjection`` then maps that to ``d_model`` (the original ``inp_merge``). This follows the
original Transformers4Rec meta-architecture (``hf4rec/recsys_meta_model.py``), not the released
library, where they differ:

* categorical feature → ``nn.Embedding`` (0 = padding): the item id at ``item_embedding_dim``
  (default ``d_model``), Normal(0, ``item_id_embeddings_init_std``); every other one at
  ``ceil(cardinality ** 0.25 * embedding_dim_from_cardinality_multiplier)``, Normal(0,
  ``other_embeddings_init_std``);
* continuous feature → the raw scalar; or ``Linear(1 → numeric_features_project_to_embedding_dim)``;
  or, with ``numeric_features_soft_one_hot_encoding_num_embeddings`` = P > 0, a soft one-hot
  encoding ``softmax(Linear(1 → P)(x)) @ E`` with ``E`` of shape ``P × project_dim`` (paper appendix A);
* ``elementwise_sum_multiply_item_embedding``: every non-item feature is brought to the item dim by
  a ``Linear`` (categorical tables and soft embeddings keep their own size first), then
  ``item ⊙ (1 + Σ others)``; ``concat``: the item id first, then the other features in schema order;
* ``layer_norm_featurewise``: a LayerNorm on each feature's representation, after the steps above,
  also on 1-dim raw scalars (as the original: the scalar then collapses to a learned constant, and a
  warning says so; with ``compat t4r-23.12`` raw scalars skip it, as in the released library);
* ``stochastic_shared_embeddings_replacement_prob`` (SSE): during training only, each non-padded
  categorical input value (item id included) is replaced with probability p by another non-padded
  value of the same feature drawn from the batch. Only the inputs change, never the labels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch
from sessrec.errors import SessrecError
from sessrec.schema import FeatureSpec, Schema

log = logging.getLogger(__name__)


# Activations from torch itself, under their transformers names (and ``identity``): the native
# bodies then import no transformers (+70 MB resident, +1.3 s at start-up, measured).
TORCH_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU, "gelu_new": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU, "tanh": nn.Tanh,
    "silu": nn.SiLU, "swish": nn.SiLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity, "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """The activation ``name`` (``tf_out_activation``, or a ``hidden_act`` of transformers' ``ACT2FN``)."""
    if name in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[name]()
    from transformers.activations import ACT2FN

    if name not in ACT2FN:
        raise SessrecError(f"unknown activation '{name}' (choose from {', '.join(sorted(set(ACT2FN) | set(TORCH_ACTIVATIONS)))})")
    return ACT2FN[name]


def side_embedding_dim(cardinality: int, multiplier: float) -> int:
    """Size of a non-item categorical embedding: ``ceil(cardinality ** 0.25 * multiplier)``."""
    return int(math.ceil(cardinality**0.25 * multiplier))


def embedding_table(cardinality: int, dim: int, init_std: float) -> nn.Embedding:
    """``nn.Embedding`` initialised Normal(0, init_std), with a zero row for the padding id 0."""
    table = nn.Embedding(cardinality, dim, padding_idx=0)
    with torch.no_grad():
        table.weight.normal_(0.0, init_std)
        table.weight[0].zero_()
    return table


class SoftOneHotEmbedding(nn.Module):
    """Soft one-hot encoding of a scalar: ``softmax(Linear(1 → P)(x)) @ E``, ``E`` of shape ``P × dim``.

    A continuous value becomes a learned mixture of P embeddings, so that nearby values get similar
    representations without a hand-made binning (paper appendix A, after Li et al. 2017).
    """

    def __init__(self, num_embeddings: int, dim: int, init_std: float):
        super().__init__()
        self.logits = nn.Linear(1, num_embeddings)
        self.embeddings = nn.Parameter(torch.empty(num_embeddings, dim).normal_(0.0, init_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[..., 1]`` → ``[..., dim]``."""
        weights = torch.softmax(self.logits(x), dim=-1)
        return weights @ self.embeddings.to(weights.dtype)


def continuous_encoder(cfg: ExperimentConfig, elementwise: bool) -> tuple[nn.Module, int]:
    """(module mapping ``[..., 1]`` values to a representation, its output size) for one continuous feature."""
    proj, n_soft = cfg.numeric_features_project_to_embedding_dim, cfg.numeric_features_soft_one_hot_encoding_num_embeddings
    if n_soft > 0:
        soft = SoftOneHotEmbedding(n_soft, proj, cfg.other_embeddings_init_std)
        if elementwise:
            return nn.Sequential(soft, nn.Linear(proj, cfg.item_dim)), cfg.item_dim
        return soft, proj
    if elementwise:
        # the original projects straight to the item dim here (whatever project_dim is); with
        # project_dim 0 it left the feature out of the sum, silently: we project it as well.
        return nn.Linear(1, cfg.item_dim), cfg.item_dim
    if proj > 0:
        return nn.Linear(1, proj), proj
    return nn.Identity(), 1


class FeatureEmbedding(nn.Module):
    """Embeds the item id and the side features of each interaction, then aggregates them.

    ``output_dim`` is the size of the aggregated representation; ``item_table`` is the item-id
    embedding table (the output layer shares it when embeddings are tied).
    """

    def __init__(self, schema: Schema, cfg: ExperimentConfig):
        super().__init__()
        self.item_key = schema.item_id.name
        self.elementwise = cfg.input_features_aggregation == "elementwise_sum_multiply_item_embedding"
        self.sse_prob = cfg.stochastic_shared_embeddings_replacement_prob
        norm = cfg.layer_norm_featurewise

        self.item_table = embedding_table(schema.n_items, cfg.item_dim, cfg.item_id_embeddings_init_std)
        self.item_norm = nn.LayerNorm(cfg.item_dim) if norm else nn.Identity()
        self.names: list[str] = []  # side features, in schema order
        self.is_categorical: list[bool] = []
        self.encoders = nn.ModuleList()  # a ModuleList, not a ModuleDict: column names may contain dots
        sizes = [cfg.item_dim]
        raw_scalars = []
        for f in schema.model_features(cfg.use_side_information_features):
            if f.is_item_id:
                continue
            encoder, size = self._side_encoder(f, cfg)
            raw = isinstance(encoder, nn.Identity)
            if raw:
                raw_scalars.append(f.name)
            self.names.append(f.name)
            self.is_categorical.append(f.is_categorical)
            normed = norm and not (raw and cfg.t4r_library)  # the library skips LayerNorm on raw scalars
            self.encoders.append(nn.Sequential(encoder, nn.LayerNorm(size) if normed else nn.Identity()))
            sizes.append(size)
        self.output_dim = cfg.item_dim if self.elementwise else sum(sizes)
        # SSE draws from its own generator, seeded from torch's global RNG (which the training loop
        # seeds with cfg.seed before building the model): runs are reproducible, and other users
        # of the global RNG (dropout) do not shift the swaps. Nothing is drawn when SSE is off.
        self.sse_generator: torch.Generator | None = None
        if self.sse_prob > 0:
            self.sse_generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self._warn_about_inert_options(cfg, raw_scalars)

    def _side_encoder(self, f: FeatureSpec, cfg: ExperimentConfig) -> tuple[nn.Module, int]:
        if f.is_categorical:
            if f.cardinality is None:
                raise SessrecError(f"schema: categorical feature '{f.name}' has no int_domain max (cardinality unknown)")
            dim = side_embedding_dim(f.cardinality, cfg.embedding_dim_from_cardinality_multiplier)
            table = embedding_table(f.cardinality, dim, cfg.other_embeddings_init_std)
            if self.elementwise:
                return nn.Sequential(table, nn.Linear(dim, cfg.item_dim)), cfg.item_dim
            return table, dim
        return continuous_encoder(cfg, self.elementwise)

    def _warn_about_inert_options(self, cfg: ExperimentConfig, raw_scalars: list[str]) -> None:
        if all(self.is_categorical) and (cfg.numeric_features_project_to_embedding_dim or cfg.numeric_features_soft_one_hot_encoding_num_embeddings):
            log.warning("numeric_features_* options have no effect: the model has no continuous input feature%s",
                        "" if cfg.use_side_information_features else " (use_side_information_features is off)")
        if cfg.use_side_information_features and not self.names:
            log.warning("use_side_information_features has no effect: the schema has no categorical or continuous "
                        "feature besides the item id")
        if self.elementwise and not self.names:
            log.warning("input_features_aggregation %s has no effect with the item id as the only input feature",
                        cfg.input_features_aggregation)
        if (self.elementwise and cfg.numeric_features_project_to_embedding_dim and not all(self.is_categorical)
                and not cfg.numeric_features_soft_one_hot_encoding_num_embeddings):
            log.warning("numeric_features_project_to_embedding_dim has no effect with input_features_aggregation %s "
                        "(without soft one-hot encoding, continuous features are projected to the item embedding's size, "
                        "as in the original)", cfg.input_features_aggregation)
        if cfg.layer_norm_featurewise and raw_scalars and not cfg.t4r_library:
            log.warning(
                "layer_norm_featurewise on raw scalar features (%s): LayerNorm over one value outputs a learned constant, "
                "so these features carry no information (as in the original); set numeric_features_project_to_embedding_dim > 0 "
                "to use them", ", ".join(raw_scalars))

    @property
    def input_names(self) -> list[str]:
        return [self.item_key, *self.names]

    def forward(self, batch: Batch) -> torch.Tensor:
        """``[B, L, output_dim]`` representations of the interactions of ``batch``."""
        item = self.item_norm(self.item_table(self.swap_noise(batch[self.item_key])))
        others = []
        for name, categorical, encoder in zip(self.names, self.is_categorical, self.encoders):
            values = batch[name]
            x = self.swap_noise(values) if categorical else values.unsqueeze(-1).to(self.item_table.weight.dtype)
            others.append(encoder(x))
        if not others:
            return item
        if self.elementwise:
            return item * (1.0 + torch.stack(others).sum(0))
        return torch.cat([item, *others], dim=-1)

    def swap_noise(self, values: torch.Tensor) -> torch.Tensor:
        """SSE (training only): each non-padded value is replaced with probability p by a value drawn,
        without replacement, among the non-padded values of the batch (the original's algorithm)."""
        if not self.training or self.sse_generator is None:
            return values
        real = values != 0
        swap = (torch.rand(values.shape, generator=self.sse_generator) < self.sse_prob).to(values.device) & real
        n_swap = int(swap.sum())
        if n_swap == 0:
            return values
        pool = values[real]
        picks = torch.randperm(pool.numel(), generator=self.sse_generator)[:n_swap].to(values.device)
        out = values.clone()
        out[swap] = pool[picks]
        return out


class InputProjection(nn.Module):
    """``inp_merge``: ``mlp`` = activation(Linear(LayerNorm?(dropout(x)))), ``identity`` = LayerNorm?(dropout(x)).

    The activation is ``tf_out_activation``, or ReLU with ``compat t4r-23.12`` (the library's ``MLPBlock``).

    The original's order: input dropout on the aggregated features, then the optional LayerNorm over
    all features (``layer_norm_all_features``), then the projection to ``d_model``. (The original
    skipped dropout and LayerNorm with ``identity``; here they apply whatever ``inp_merge`` is.)
    """

    def __init__(self, input_dim: int, cfg: ExperimentConfig):
        super().__init__()
        self.dropout = nn.Dropout(cfg.input_dropout)
        self.norm = nn.LayerNorm(input_dim) if cfg.layer_norm_all_features else nn.Identity()
        if cfg.inp_merge == "identity":
            if input_dim != cfg.d_model:
                raise SessrecError(
                    f"inp_merge identity needs the input features to have d_model={cfg.d_model} dims, they have {input_dim}; use inp_merge mlp"
                )
            self.proj: nn.Module = nn.Identity()
        else:
            act = "relu" if cfg.t4r_library else cfg.tf_out_activation
            self.proj = nn.Sequential(nn.Linear(input_dim, cfg.d_model), activation(act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.dropout(x)))
