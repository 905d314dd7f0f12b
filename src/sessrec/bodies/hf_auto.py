"""Any ``transformers`` model class that accepts ``inputs_embeds``, by name: ``--model hf:<ModelClass>``.

The config is the class's own config with the usual fields set from the experiment config when
the class has them (hidden size = ``d_model``, layers, heads, feed-forward = ``4 * d_model``,
``hidden_act``, every dropout, LayerNorm/RMSNorm epsilon, ``initializer_range``, maximum
positions), then ``model_config`` on top, e.g. a Llama-style decoder (RoPE, RMSNorm, SwiGLU)::

    sessrec run --model hf:LlamaModel --task clm --hidden-act silu \\
        --model-config '{intermediate_size: 256, num_key_value_heads: 2}'

Attention always gets an explicit 4D mask (padding, plus lower-triangular for causal runs), which
``transformers`` 5.x uses as given. What the model actually does with it is checked once when the
body is built, on a tiny random input: causal runs must not depend on later positions, and
bidirectional runs must (a decoder that ignores the mask is causal only). A class that cannot
honour a mode says so when the objective needs it.
"""

from __future__ import annotations

import difflib
import inspect

import torch
import transformers
from torch import nn

from sessrec.bodies.attention import attention_mask_4d
from sessrec.bodies.hf import NO_TOKENS, config_fields, hf_config
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

# Experiment setting → the config field names it goes to (every listed name the class has is set).
FIELDS: dict[str, tuple[str, ...]] = {
    "hidden": ("hidden_size", "d_model", "n_embd", "dim"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "inner": ("intermediate_size", "d_inner", "n_inner", "ffn_dim", "hidden_dim"),
    "act": ("hidden_act", "activation_function", "ff_activation", "activation"),
    "dropout": ("hidden_dropout_prob", "attention_probs_dropout_prob", "hidden_dropout", "attention_dropout",
                "dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop"),
    "eps": ("layer_norm_eps", "layer_norm_epsilon", "rms_norm_eps", "norm_eps"),
    "init": ("initializer_range",),
    "positions": ("max_position_embeddings", "n_positions"),
}
ONE_NAME = {"hidden", "layers", "heads", "inner", "act", "positions"}  # aliases of one field: set the first only


def resolve_model_class(name: str) -> type:
    cls = getattr(transformers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        models = [n for n in dir(transformers) if n.endswith("Model")]
        close = difflib.get_close_matches(name, models, n=3)
        hint = f" (did you mean {', '.join('hf:' + c for c in close)}?)" if close else ""
        raise SessrecError(f"model_type hf:{name}: transformers {transformers.__version__} has no model class '{name}'{hint}")
    if "inputs_embeds" not in inspect.signature(cls.forward).parameters:
        raise SessrecError(f"model_type hf:{name}: {name}.forward does not accept inputs_embeds, so it cannot be fed item embeddings")
    return cls


class AnyHFBody(nn.Module):
    def __init__(self, cfg: ExperimentConfig, class_name: str):
        super().__init__()
        cls = resolve_model_class(class_name)
        known = config_fields(cls.config_class)
        wanted = {"hidden": cfg.d_model, "layers": cfg.n_layer, "heads": cfg.n_head, "inner": 4 * cfg.d_model,
                  "act": cfg.hidden_act, "dropout": cfg.dropout, "eps": cfg.layer_norm_eps, "init": cfg.initializer_range,
                  "positions": cfg.session_seq_length_max + 2}
        values = {k: v for k, v in NO_TOKENS.items() if k in known}
        for key, value in wanted.items():
            names = [n for n in FIELDS[key] if n in known]
            for n in names[:1] if key in ONE_NAME else names:
                values[n] = value
        config = hf_config(cls.config_class, values, cfg.model_config, cfg.model_type)
        self.model = cls(config)
        self.name = cfg.model_type
        self.extra = {"use_cache": False} if "use_cache" in inspect.signature(cls.forward).parameters else {}
        self.supports_causal, self.supports_bidirectional = self._probe(cfg.d_model)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = False, **kwargs) -> torch.Tensor:
        mask = attention_mask_4d(padding_mask, causal, x.dtype)
        out = self.model(inputs_embeds=x, attention_mask=mask, **self.extra, **kwargs)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    @torch.no_grad()
    def _probe(self, d_model: int) -> tuple[bool, bool]:
        """(causal runs ignore later positions, bidirectional runs see them), on a 1 x 4 random input."""
        was_training = self.training
        self.eval()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 4, d_model, generator=g)
        changed = x.clone()
        changed[:, -1] = torch.randn(d_model, generator=g)
        mask = torch.ones(1, 4, dtype=torch.bool)
        try:
            outs = {c: (self(x, mask, causal=c), self(changed, mask, causal=c)) for c in (True, False)}
        except Exception as e:  # noqa: BLE001 — any failure here means the class cannot be used this way
            raise SessrecError(f"model_type {self.name}: a forward pass with inputs_embeds failed ({type(e).__name__}: {e})") from None
        finally:
            self.train(was_training)
        if outs[True][0].shape != (1, 4, d_model):
            raise SessrecError(f"model_type {self.name}: hidden states have shape {tuple(outs[True][0].shape)[1:]}, "
                               f"expected (L, d_model={d_model}); set its hidden size in model_config")
        causal_ok = torch.allclose(outs[True][0][:, :3], outs[True][1][:, :3], atol=1e-6)
        bidirectional_ok = not torch.allclose(outs[False][0][:, :3], outs[False][1][:, :3], atol=1e-6)
        if not (causal_ok or bidirectional_ok):
            raise SessrecError(f"model_type {self.name}: the model honours neither a causal nor a bidirectional attention mask")
        return causal_ok, bidirectional_ok
