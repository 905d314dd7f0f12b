"""The session model: features → input projection → body → (objective) → next-item head."""

from __future__ import annotations

import torch
from torch import nn

from sessrec.bodies import build_body
from sessrec.bodies.packing import Packing
from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch
from sessrec.features import FeatureEmbedding, InputProjection
from sessrec.head import NextItemHead
from sessrec.schema import Schema
from sessrec.tasks import build_objective, sequence_config


class SessionModel(nn.Module):
    """One network for one (architecture, objective) pair; scores only at target positions.

    The input projection, body and head are those of the model that predicts items: of size
    ``d_model``, except the smaller generator of RTD with an untied generator (see
    :func:`sessrec.tasks.sequence_config`); the objective owns any extra part (RTD's discriminator).
    """

    def __init__(self, schema: Schema, cfg: ExperimentConfig):
        super().__init__()
        seq_cfg = sequence_config(cfg)
        self.item_key = schema.item_id.name
        self.n_items = schema.n_items
        self.features = FeatureEmbedding(schema, cfg)
        self.merge = InputProjection(self.features.output_dim, seq_cfg)
        self.body = build_body(seq_cfg)
        # the interactions' times, for a body that reads them (HSTU's time bias) on data that has them
        time = schema.time_feature
        self.time_key = time.name if time is not None and hasattr(self.body, "use_timestamps") and self.body.use_timestamps() else None
        self.objective = build_objective(cfg, self.body, self.features.output_dim)
        self.head = NextItemHead(seq_cfg, schema.n_items, self.features.item_table)

    @property
    def input_names(self) -> list[str]:
        return self.features.input_names + ([self.time_key] if self.time_key else [])

    def embed(self, batch: Batch, packing: Packing | None = None) -> torch.Tensor:
        """``[B, L, d_model]`` interaction representations; zeros at the padded positions. With ``packing``
        (of the batch's real items) its packed rows ``[T', d_model]`` instead.

        Every step up to ``d_model`` acts on each interaction alone, so it runs on the real ones
        only (sessions are mostly padding: a quarter of the time of a training step, measured).
        """
        own = packing or Packing(batch[self.item_key] != 0)
        packed = {name: own.pack(batch[name]) for name in self.features.input_names}
        x = self.merge(self.features(packed))
        return x if packing is not None else own.unpack(x)

    def encode(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool, outputs: torch.Tensor | None = None,
               **kwargs) -> torch.Tensor:
        """Hidden states ``[B, L, d_model]``; with ``outputs`` (flat positions ``b * L + l``) only theirs,
        ``[n, d_model]``: bodies that can (``selects_outputs``) then run their last layer's position-wise
        part on those positions alone (a masked-LM step predicts a tenth of them, evaluation one per session)."""
        if outputs is None:
            return self.body(x, padding_mask, causal=causal, **kwargs)
        if getattr(self.body, "selects_outputs", False):
            return self.body(x, padding_mask, causal=causal, outputs=outputs, **kwargs)
        h = self.body(x, padding_mask, causal=causal, **kwargs)
        return h.reshape(-1, h.shape[-1]).index_select(0, outputs)

    def embed_encode(self, batch: Batch, causal: bool, outputs: torch.Tensor | None = None) -> torch.Tensor:
        """``encode(embed(batch))`` of a batch as it is; a body that takes packed rows (``takes_packed``)
        gets the embedding's as they are, without the unpack and pack between the two."""
        real = batch[self.item_key] != 0
        extra = {"timestamps": batch[self.time_key]} if self.time_key else {}
        if not getattr(self.body, "takes_packed", False):
            return self.encode(self.embed(batch), real, causal, outputs, **extra)
        packing = Packing(real, group=True)
        return self.encode(self.embed(batch, packing), real, causal, outputs, packing=packing, **extra)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.objective.loss(self, batch, generator)

    def generator_states(self) -> dict[str, torch.Tensor]:
        """The states of the model's own random generators (SSE's): training state, not weights,
        saved so that a resumed run draws the numbers an uninterrupted one would."""
        sse = self.features.sse_generator
        return {} if sse is None else {"sse": sse.get_state()}

    def set_generator_states(self, states: dict[str, torch.Tensor]) -> None:
        if "sse" in states:
            self.features.sse_generator.set_state(states["sse"])

    def next_item_hidden(self, prefix: Batch) -> torch.Tensor:
        """The hidden state ``[B, d_model]`` the head scores the next item of each session from."""
        return self.objective.next_item_hidden(self, prefix)

    def next_item_scores(self, prefix: Batch) -> torch.Tensor:
        """Logits ``[B, n_items - 1]`` (column j = item j + 1) for the item following each session."""
        return self.head(self.next_item_hidden(prefix))
