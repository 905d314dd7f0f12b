"""AdamW with decoupled weight decay, one fused kernel for all parameters.

It calls the kernel ``torch.optim.AdamW(fused=True)`` calls (``torch._fused_adamw_``), so the
updates are bit for bit the same (tested), but it is not a ``torch.optim.Optimizer``: every
``Optimizer`` method imports ``torch._dynamo`` on first use, which costs +72 MB resident memory
and 1.6 s of start-up on CPU (measured) in a job that never compiles anything. Its
:meth:`state_dict` has ``torch.optim``'s layout, so checkpoints load in either.

The private kernels used here (``torch._fused_adamw_``, ``torch._foreach_*``) are not part of
PyTorch's public API: where one is missing or fails, the same update is made with public
per-tensor operations (``torch.optim.AdamW``'s single-tensor formulas; tested equal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from sessrec.runtime import private_op


class FusedAdamW:
    """AdamW over parameter groups (``{"params": [...], "weight_decay": ...}``), as ``torch.optim.AdamW``.

    Duck-types the parts of ``torch.optim.Optimizer`` that training and ``torch.amp.GradScaler`` use:
    ``param_groups`` (whose ``"lr"`` the schedule sets), ``state``, ``step``, ``zero_grad``,
    ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, groups: Iterable[dict[str, Any]], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict[str, Any]] = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p not in self.state:
                    # step on the parameter's device, as torch.optim.AdamW(fused=True) keeps it
                    self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            states = [self.state[p] for p in params]
            steps = [s["step"] for s in states]
            private_op("torch._foreach_add_", lambda: torch._foreach_add_, _add_each, steps, 1)
            beta1, beta2 = g["betas"]
            private_op("torch._fused_adamw_", lambda: torch._fused_adamw_, _adamw_public,
                       params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                       [], steps, lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"],
                       amsgrad=False, maximize=False, grad_scale=None, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim``'s layout: state keyed by the parameter's index over all groups."""
        index = {p: i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for g in self.param_groups:
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
        return {"state": {index[p]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, or a ``torch.optim.AdamW`` one for the same parameters."""
        saved = state["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state has different parameter groups than this model")
        params = self._params()
        self.state = {}
        for i, s in state["state"].items():
            p = params[int(i)]
            self.state[p] = {"step": s["step"].to(device=p.device, dtype=torch.float32, copy=True).reshape(()),
                             "exp_avg": s["exp_avg"].to(p, copy=True), "exp_avg_sq": s["exp_avg_sq"].to(p, copy=True)}
        for g, s in zip(self.param_groups, saved):
            g.update({k: (tuple(v) if k == "betas" else v) for k, v in s.items()
                      if k in ("lr", "betas", "eps", "weight_decay")})


@torch.no_grad()
def clip_grad_norm_(params: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm), the same values, in two calls over all gradients
    instead of two per parameter (on CPU PyTorch has no foreach path there: 0.4 ms a step of call
    overhead, measured), and no scaling when the norm is within ``max_norm`` (a factor of exactly 1)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = private_op("torch._foreach_norm", lambda: torch._foreach_norm, _norm_each, grads, 2.0)
    total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    if coef.device.type != "cpu" or not coef.item() >= 1.0:  # NaN scales too, as in torch; no host sync on a GPU
        private_op("torch._foreach_mul_", lambda: torch._foreach_mul_, _mul_each, grads, coef)
    return total


# The public equivalents of the private kernels above.

def _add_each(tensors: list[torch.Tensor], value: float) -> None:
    for t in tensors:
        t.add_(value)


def _mul_each(tensors: list[torch.Tensor], factor: torch.Tensor) -> None:
    for t in tensors:
        t.mul_(factor)


def _norm_each(tensors: list[torch.Tensor], ord: float) -> list[torch.Tensor]:
    return [torch.linalg.vector_norm(t, ord) for t in tensors]


def _adamw_public(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                  exp_avg_sqs: list[torch.Tensor], max_exp_avg_sqs: list[torch.Tensor], steps: list[torch.Tensor], *,
                  lr: float, beta1: float, beta2: float, weight_decay: float, eps: float, **_: Any) -> None:
    """``torch._fused_adamw_``'s update (no amsgrad, no gradient scale) as ``torch.optim.AdamW``
    makes it per tensor; ``steps`` already counts this step."""
    for p, grad, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        t = float(step)
        p.mul_(1 - lr * weight_decay)
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
