"""GRU4Rec (Hidasi et al.) in PyTorch, following the official implementations' design.

The paper ran the Theano GRU4Rec (hf4rec's copy); hidasib/GRU4Rec_PyTorch_Official is its
validated PyTorch port. Both are followed here:

* **session-parallel mini-batches**: sessions sorted by start time fill ``batch_size`` lanes;
  each step feeds one click per lane and predicts the next one; when a session ends its lane
  takes the next session and its hidden state is reset to zero;
* **scores over the mini-batch's targets** (the other lanes' targets are the negatives) plus
  ``n_sample`` extra negatives shared by the batch, drawn with probability proportional to
  ``support ** sample_alpha`` (``logq`` subtracts ``logq * log(support)``);
* ``final_act`` on those scores, then the ``loss``: ``cross-entropy`` (softmax over the scores,
  optional label ``smoothing``), ``bpr-max`` (with ``bpreg``), ``top1-max``, ``bpr``, ``top1``;
  the summed loss is divided by ``batch_size``;
* item input: ``constrained_embedding`` (the output table is also the input embedding), else an
  ``embedding`` table, else one-hot input (the first GRU layer's input weights are an item table);
  ``dropout_p_embed`` on the input embedding, ``dropout_p_hidden`` on every layer's output (the
  dropped-out state is carried, as in the originals); one GRU layer per entry of ``layers``;
* Adagrad with momentum (``momentum``), L2 (``lmbd``) and gradient capping (``grad_cap``); the
  item tables get sparse gradients, so only the rows of the batch's items (and their Adagrad
  accumulators and velocities) are updated;
* Theano's initialisation: uniform in ``+-sqrt(6 / (fan_in + fan_out))`` (``sigma`` overrides,
  ``init_as_normal`` draws from a normal), biases 0.

``score(prefix)`` runs the GRU over the prefix from a zero state and scores every item of the
catalog by ``h . Wy + By`` (``final_act`` is monotone, so it is not applied: the ranking is the
same without the ties a saturating activation would create). Items the model never trained on get
the lowest score; unknown items in the prefix are skipped (the original evaluation reused the
prediction made before them); a prefix with no known item gets a constant score (a miss).

Modes (the paper's): FT = ``--no-incremental-training --training-time-window-size 0`` (a new
model per window, trained on all windows so far), SWT = ``... --training-time-window-size w``
(the last ``w`` windows). Without ``--no-incremental-training`` the same model is fine-tuned
window after window, like the Transformers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sessrec.baselines.params import at_least, choice, parse_params, unsupported
from sessrec.baselines.sessions import time_feature
from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch, SessionTensors
from sessrec.errors import SessrecError, warn_once
from sessrec.progress import bar_disabled
from sessrec.runtime import load_weights, resolve_device, seed_everything
from sessrec.schema import Schema

log = logging.getLogger(__name__)

NAME = "gru4rec"


@dataclass
class GRU4RecParams:
    """The Theano ``GRU4Rec`` constructor arguments used by the paper (hf4rec), same names and defaults.

    ``seed`` defaults to the experiment's ``--seed`` (the original script passed it the same way).
    """

    loss: str = "bpr-max"
    final_act: str = "linear"
    hidden_act: str = "tanh"
    layers: list[int] = field(default_factory=lambda: [100])
    n_epochs: int = 10
    batch_size: int = 32
    dropout_p_hidden: float = 0.0
    dropout_p_embed: float = 0.0
    learning_rate: float = 0.1
    momentum: float = 0.0
    lmbd: float = 0.0
    embedding: int = 0
    n_sample: int = 2048
    sample_alpha: float = 0.75
    smoothing: float = 0.0
    constrained_embedding: bool = False
    adapt: str | None = "adagrad"
    grad_cap: float = 0.0
    bpreg: float = 1.0
    logq: float = 0.0
    sigma: float = 0.0
    init_as_normal: bool = False
    train_random_order: bool = False
    time_sort: bool = True
    seed: int | None = None

    def check(self) -> None:
        choice(NAME, "loss", self.loss, tuple(LOSSES))
        final_activation(self.final_act)
        if self.hidden_act != "tanh":
            unsupported(NAME, "hidden_act", self.hidden_act, "the PyTorch GRU cell's candidate activation is tanh")
        if self.adapt not in ("adagrad", None):
            unsupported(NAME, "adapt", self.adapt, "only 'adagrad' (with momentum) or None (SGD), as in the official "
                        "PyTorch port")
        for name in ("n_epochs", "batch_size"):
            at_least(NAME, name, getattr(self, name), 1)
        if not self.layers or min(self.layers) < 1:
            raise SessrecError(f"baseline_params: {NAME} parameter 'layers' must be positive sizes (got {self.layers})")
        for name in ("embedding", "n_sample", "momentum", "lmbd", "sample_alpha", "grad_cap", "bpreg", "logq", "sigma"):
            at_least(NAME, name, getattr(self, name), 0)
        at_least(NAME, "learning_rate", self.learning_rate, 0, strict=True)
        for name in ("dropout_p_hidden", "dropout_p_embed", "smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SessrecError(f"baseline_params: {NAME} parameter '{name}' must be in [0, 1) (got {getattr(self, name)})")
        if self.smoothing and self.loss != "cross-entropy":
            raise SessrecError(f"baseline_params: {NAME} parameter 'smoothing' only works with loss cross-entropy")
        if self.loss != "cross-entropy" and self.batch_size == 1 and self.n_sample == 0:  # the loss was NaN
            raise SessrecError(f"baseline_params: {NAME} loss {self.loss} ranks each target against the mini-batch's "
                               "other targets and n_sample extra items: with batch_size 1 and n_sample 0 there are none; "
                               "raise one of them")
        if self.constrained_embedding and self.embedding:
            warn_once(f"gru4rec: embedding={self.embedding} is ignored with constrained_embedding (the input embedding "
                      "is the output table, of size layers[-1]), as in the original")
        if not (self.constrained_embedding or self.embedding) and self.dropout_p_embed:
            warn_once("gru4rec: dropout_p_embed is ignored with one-hot input (embedding=0), as in the original")


# ---- activations and losses (scores R: [M, C], column i of row i = the positive) -------------

def final_activation(spec: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``linear``, ``relu``, ``tanh``, ``leaky-<a>``, ``elu-<a>``, ``selu-<l>-<a>`` (the Theano names)."""
    name, *args = spec.split("-")
    try:
        values = [float(a) for a in args]
    except ValueError:
        values = None
    simple = {"linear": lambda x: x, "relu": torch.relu, "tanh": torch.tanh}
    if name in simple and not args:
        return simple[name]
    if values is not None and name == "leaky" and len(values) == 1:
        return lambda x: F.leaky_relu(x, values[0])
    if values is not None and name == "elu" and len(values) == 1:
        return lambda x: torch.where(x >= 0, x, values[0] * torch.expm1(x))
    if values is not None and name == "selu" and len(values) == 2:
        return lambda x: values[0] * torch.where(x >= 0, x, values[1] * torch.expm1(x))
    raise SessrecError(f"baseline_params: {NAME} parameter 'final_act' must be linear, relu, tanh, leaky-<a>, "
                       f"elu-<a> or selu-<l>-<a> (got {spec!r}); with loss cross-entropy the softmax is part of the loss")


def _diag(r: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(r).unsqueeze(1)


def _softmax_neg(r: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's negatives (the positive is masked out)."""
    keep = 1.0 - torch.eye(*r.shape, dtype=r.dtype, device=r.device)
    x = r * keep
    e = torch.exp(x - x.max(dim=1, keepdim=True).values) * keep
    return e / e.sum(dim=1, keepdim=True)


def _cross_entropy(r: torch.Tensor, p: GRU4RecParams) -> torch.Tensor:
    probs = torch.softmax(r, dim=1)
    nll = -torch.log(torch.diagonal(probs) + 1e-24)
    if not p.smoothing:
        return nll.sum()
    n_out = r.shape[1]
    all_nll = -torch.log(probs + 1e-24).sum(dim=1)
    return ((1.0 - n_out / (n_out - 1) * p.smoothing) * nll + p.smoothing / (n_out - 1) * all_nll).sum()


def _bpr_max(r: torch.Tensor, p: GRU4RecParams) -> torch.Tensor:
    s = _softmax_neg(r)
    return (-torch.log((torch.sigmoid(_diag(r) - r) * s).sum(dim=1) + 1e-24) + p.bpreg * (r**2 * s).sum(dim=1)).sum()


def _top1_max(r: torch.Tensor, p: GRU4RecParams) -> torch.Tensor:
    return (_softmax_neg(r) * (torch.sigmoid(r - _diag(r)) + torch.sigmoid(r**2))).sum()


def _bpr(r: torch.Tensor, p: GRU4RecParams) -> torch.Tensor:
    return -F.logsigmoid(_diag(r) - r).sum()


def _top1(r: torch.Tensor, p: GRU4RecParams) -> torch.Tensor:
    d = _diag(r)
    return ((torch.sigmoid(r - d) + torch.sigmoid(r**2)).mean(dim=1) - torch.sigmoid(d.squeeze(1) ** 2) / r.shape[1]).sum()


LOSSES: dict[str, Callable[[torch.Tensor, GRU4RecParams], torch.Tensor]] = {
    "cross-entropy": _cross_entropy, "bpr-max": _bpr_max, "top1-max": _top1_max, "bpr": _bpr, "top1": _top1,
}


# ---- optimizer ------------------------------------------------------------------------------

class AdagradMomentum(torch.optim.Optimizer):
    """GRU4Rec's update: Adagrad-scaled gradient, then momentum and L2, with optional global norm capping.

    ``acc += g**2; g /= sqrt(acc + eps); v = momentum * v - lr * (g + lmbd * w); w += v``
    (without momentum: ``w -= lr * (g + lmbd * w)``). A sparse gradient (item tables) touches only
    its rows, so untouched items keep their accumulator and velocity, as in the originals.
    torch.optim.Adagrad has no momentum and applies L2 before the scaling, hence this class.
    """

    def __init__(self, params, lr: float, momentum: float, lmbd: float, grad_cap: float, adagrad: bool,
                 eps: float = 1e-6):
        super().__init__(params, dict(lr=lr, momentum=momentum, lmbd=lmbd, grad_cap=grad_cap, adagrad=adagrad, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        pairs = []
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is not None:
                    pairs.append((group, w, w.grad.coalesce() if w.grad.is_sparse else w.grad))
        scale = 1.0
        cap = self.defaults["grad_cap"]
        if cap > 0 and pairs:
            norm = math.sqrt(sum(float((g._values() if g.is_sparse else g).pow(2).sum()) for _, _, g in pairs))
            scale = cap / norm if norm >= cap else 1.0
        for group, w, g in pairs:
            state = self.state[w]
            if not state:
                state["acc"] = torch.zeros_like(w)
                if group["momentum"] > 0:
                    state["mom"] = torch.zeros_like(w)
            lr, mu, lmbd = group["lr"], group["momentum"], group["lmbd"]
            if g.is_sparse:
                rows, values = g._indices()[0], g._values() * scale
                if group["adagrad"]:
                    acc = state["acc"][rows] + values**2
                    state["acc"].index_copy_(0, rows, acc)
                    values = values / torch.sqrt(acc + group["eps"])
                delta = lr * (values + lmbd * w[rows]) if lmbd > 0 else lr * values
                if mu > 0:
                    mom = state["mom"][rows] * mu - delta
                    state["mom"].index_copy_(0, rows, mom)
                    w.index_add_(0, rows, mom)
                else:
                    w.index_add_(0, rows, -delta)
            else:
                g = g * scale
                if group["adagrad"]:
                    state["acc"].add_(g**2)
                    g = g / torch.sqrt(state["acc"] + group["eps"])
                if mu > 0:
                    state["mom"].mul_(mu).sub_(lr * (g + lmbd * w))
                    w.add_(state["mom"])
                else:
                    w.mul_(1.0 - lr * lmbd).sub_(lr * g)


# ---- network --------------------------------------------------------------------------------

class OneHotGRU(nn.Module):
    """A GRU layer fed with one-hot items: its input weights are an item table (the official
    ``GRUEmbedding``); the reset gate applies to the recurrent candidate term, as in nn.GRUCell."""

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.wx = nn.Embedding(n_items, 3 * hidden, sparse=True)
        self.wh = nn.Parameter(torch.empty(hidden, 3 * hidden))
        self.bias = nn.Parameter(torch.zeros(3 * hidden))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        vx_n, vx_r, vx_z = (self.wx(x) + self.bias).chunk(3, dim=1)
        vh_n, vh_r, vh_z = (h @ self.wh).chunk(3, dim=1)
        r = torch.sigmoid(vx_r + vh_r)
        z = torch.sigmoid(vx_z + vh_z)
        return (1.0 - z) * h + z * torch.tanh(r * vh_n + vx_n)


class GRU4RecNet(nn.Module):
    """Item input -> GRU layers -> scores against the output item table ``Wy`` (+ bias ``By``)."""

    def __init__(self, n_items: int, p: GRU4RecParams):
        super().__init__()
        self.p = p
        sizes = p.layers
        self.emb = nn.Embedding(n_items, p.embedding, sparse=True) if p.embedding and not p.constrained_embedding else None
        self.onehot = OneHotGRU(n_items, sizes[0]) if not (p.constrained_embedding or p.embedding) else None
        n_in = sizes[-1] if p.constrained_embedding else p.embedding
        first = 1 if self.onehot is not None else 0
        self.cells = nn.ModuleList(nn.GRUCell(sizes[i - 1] if i > 0 else n_in, sizes[i]) for i in range(first, len(sizes)))
        self.wy = nn.Embedding(n_items, sizes[-1], sparse=True)
        self.by = nn.Embedding(n_items, 1, sparse=True)

    def step(self, x: torch.Tensor, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """One click per row: the new state of every layer (the last one represents the session)."""
        p, new = self.p, []
        if self.onehot is not None:
            y = F.dropout(self.onehot(x, hidden[0]), p.dropout_p_hidden, self.training)
            new.append(y)
        else:
            y = F.dropout((self.wy if self.emb is None else self.emb)(x), p.dropout_p_embed, self.training)
        for cell, h in zip(self.cells, hidden[len(new):]):
            y = F.dropout(cell(y, h), p.dropout_p_hidden, self.training)
            new.append(y)
        return new

    def scores(self, h: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, len(targets)]`` scores (``[B, n_items]`` for the whole catalog when ``targets`` is None)."""
        if targets is None:
            return h @ self.wy.weight.T + self.by.weight.T
        return h @ self.wy(targets).T + self.by(targets).T

    @torch.no_grad()
    def reset_parameters(self, n_train_items: int, generator: torch.Generator) -> None:
        """Theano GRU4Rec's init: U(+-sqrt(6 / (rows + cols))) per weight block; biases 0."""
        p = self.p

        def init(t: torch.Tensor, fan: int) -> None:
            sigma = p.sigma or math.sqrt(6.0 / fan)
            if p.init_as_normal:
                t.normal_(0.0, sigma, generator=generator)
            else:
                t.uniform_(-sigma, sigma, generator=generator)

        if self.emb is not None:
            init(self.emb.weight, n_train_items + p.embedding)
        if self.onehot is not None:
            hidden = p.layers[0]
            init(self.onehot.wx.weight, n_train_items + hidden)
            init(self.onehot.wh, 2 * hidden)
            self.onehot.bias.zero_()
        for cell in self.cells:
            init(cell.weight_ih, cell.input_size + cell.hidden_size)
            init(cell.weight_hh, 2 * cell.hidden_size)
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()
        init(self.wy.weight, n_train_items + p.layers[-1])
        self.by.weight.zero_()


class NegativeSampler:
    """Extra negatives shared by a mini-batch: ``P(item) ~ support ** alpha`` over the training items,
    drawn in chunks of many batches (GRU4Rec's "sample store")."""

    def __init__(self, support: torch.Tensor, n_sample: int, alpha: float, generator: torch.Generator,
                 store_size: int = 1_000_000):
        w = torch.where(support > 0, support.double() ** alpha, torch.zeros_like(support, dtype=torch.float64))
        self.cdf = (torch.cumsum(w, 0) / w.sum()).float()
        self.n_sample, self.generator = n_sample, generator
        self.per_refill = max(1, store_size // max(n_sample, 1))
        self.store, self.pointer = None, 0

    def next(self) -> torch.Tensor:
        if self.store is None or self.pointer >= self.store.shape[0]:
            # drawn on the CPU (its stream the same on every device: a checkpoint resumes on another), searched there
            u = torch.rand(self.per_refill * self.n_sample, generator=self.generator).to(self.cdf.device)
            idx = torch.searchsorted(self.cdf, u, right=True).clamp_(max=self.cdf.numel() - 1)
            self.store, self.pointer = idx.view(self.per_refill, self.n_sample), 0
        self.pointer += 1
        return self.store[self.pointer - 1]


@dataclass
class Reset:
    """Lanes whose session just ended (their state is zeroed) and lanes that go on (the others are dropped)."""

    finished: np.ndarray
    valid: np.ndarray


def session_parallel(offsets: np.ndarray, order: np.ndarray, batch_size: int,
                     stop_below_two: bool) -> Iterator[tuple[np.ndarray, np.ndarray] | Reset]:
    """GRU4Rec's session-parallel mini-batches over sessions ``offsets[s]:offsets[s+1]`` of a flat array.

    Yields ``(inputs, targets)`` positions (one click and the next one per lane), and a
    :class:`Reset` whenever lanes finish their session: a finished lane takes the next session in
    ``order``; lanes are dropped once no session is left. Stops when no lane is left, or fewer than
    two without extra negatives (one lane alone has no negative).
    """
    n_sessions = len(order)
    lanes = np.arange(min(batch_size, n_sessions))
    if lanes.size == 0:
        return
    last_lane = int(lanes[-1])
    first = offsets[order[lanes]]
    end = offsets[order[lanes] + 1]
    while True:
        shortest = int((end - first).min())
        for i in range(shortest - 1):
            yield first + i, first + i + 1
        first = first + shortest - 1
        finished = end - first <= 1
        n_finished = int(finished.sum())
        lanes[finished] = last_lane + np.arange(1, n_finished + 1)
        last_lane += n_finished
        valid = lanes < n_sessions
        n_valid = int(valid.sum())
        if n_valid == 0 or (n_valid < 2 and stop_below_two):
            return
        refill = finished & valid
        sessions = order[lanes[refill]]
        first[refill] = offsets[sessions]
        end[refill] = offsets[sessions + 1]
        yield Reset(finished, valid)
        lanes, first, end = lanes[valid], first[valid], end[valid]


# ---- the learner ----------------------------------------------------------------------------

class GRU4Rec:
    """GRU4Rec under the sessrec protocol (see the module docstring)."""

    scores_are_logits = False

    def __init__(self, cfg: ExperimentConfig, schema: Schema, p: GRU4RecParams):
        self.cfg, self.p = cfg, p
        self.seed = cfg.seed if p.seed is None else p.seed
        self.device = resolve_device(cfg.device)
        if cfg.num_threads > 0:  # as the neural learners do
            torch.set_num_threads(cfg.num_threads)
        self.item_key = schema.item_id.name
        tf = time_feature(schema)
        self.time_key = tf.name if tf is not None else None
        self.input_names = [self.item_key] + ([self.time_key] if self.time_key else [])
        self.scoring_names = [self.item_key]  # the times order the training sessions only
        self.n_items = schema.n_items
        self.final_act = final_activation(p.final_act)
        self.net: GRU4RecNet | None = None
        self.optimizer: AdagradMomentum | None = None
        self.seen = torch.zeros(self.n_items, dtype=torch.bool, device=self.device)
        self.generator = torch.Generator().manual_seed(self.seed)  # the negatives' draws (NegativeSampler)
        self.order_rng = np.random.default_rng(self.seed)
        self.history: list[dict] = []
        self.epochs_done = 0

    @property
    def known_items(self) -> np.ndarray:
        """The items trained on (none before the network is built): ``score`` skips the others (Learner protocol)."""
        if self.net is None:
            return np.zeros(self.n_items, dtype=bool)
        return self.seen.cpu().numpy()

    @property
    def n_parameters(self) -> int:
        return sum(w.numel() for w in self.net.parameters()) if self.net is not None else 0

    def _build(self, n_train_items: int) -> None:
        seed_everything(self.seed)
        self._new_net()
        self.net.reset_parameters(n_train_items, torch.Generator(device=self.device).manual_seed(self.seed))

    def _new_net(self) -> None:
        self.net = GRU4RecNet(self.n_items, self.p).to(self.device)
        self.optimizer = AdagradMomentum(self.net.parameters(), self.p.learning_rate, self.p.momentum, self.p.lmbd,
                                         self.p.grad_cap, adagrad=self.p.adapt == "adagrad")

    def state_dict(self) -> dict[str, Any]:
        """The network (None before it trained) and the items it trained on under ``"model"``: what scoring needs;
        the optimizer's accumulators, the negative sampling and session order generators and the epoch count
        besides, so that a resumed run goes on as an uninterrupted one, and a checkpoint is recommended from and
        served (``--backend eager``) like a neural model's."""
        state = {"model": {"net": None if self.net is None else self.net.state_dict(), "seen": self.seen},
                 "generator": self.generator.get_state(), "order_rng": self.order_rng.bit_generator.state,
                 "epochs_done": self.epochs_done}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a state with only ``"model"`` loads what scoring needs."""
        model = state["model"]
        if model["seen"].numel() != self.n_items:
            raise SessrecError(f"the saved GRU4Rec is over {model['seen'].numel() - 1} items, this schema's over "
                               f"{self.n_items - 1}")
        self.seen = model["seen"].to(self.device, torch.bool)
        self.net = self.optimizer = None
        if model["net"] is not None:
            with torch.random.fork_rng(devices=[]):  # initial weights, overwritten: leave the caller's generator alone
                self._new_net()
            load_weights(self.net, model["net"])
        if "optimizer" in state and self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if "generator" in state:
            self.generator.set_state(state["generator"])
            self.order_rng.bit_generator.state = state["order_rng"]
            self.epochs_done = int(state["epochs_done"])

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Train ``n_epochs`` on these sessions (a new model per window in the FT/SWT modes)."""
        p = self.p
        lengths = data.lengths
        keep = lengths >= 2
        items = data.items[keep]
        lengths = lengths[keep].numpy()
        if items.shape[0] == 0:
            log.warning("window %d: no session with 2 items or more: nothing to train", window)
            return {"train_steps": 0.0}
        flat = items[items != 0].to(self.device)  # sessions one after the other
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        # the items of single-click sessions too, as both official versions count them (their catalog and sampling
        # support come from every event): such an item is scored and drawn as a negative, though never a target
        support = torch.bincount(data.items[data.items != 0].to(self.device), minlength=self.n_items).double()
        if self.net is None:
            self._build(int((support > 0).sum()))
        self.seen |= support > 0
        if p.time_sort and self.time_key is not None and self.time_key in data.features:
            base_order = np.argsort(data.features[self.time_key][keep][:, 0].numpy(), kind="stable")
        else:
            base_order = np.arange(len(lengths))
        sampler = NegativeSampler(support, p.n_sample, p.sample_alpha, self.generator) if p.n_sample else None
        log_support = torch.log(support.clamp(min=1.0)) if p.logq else None
        self.net.train()
        start, steps, loss = time.perf_counter(), 0, float("nan")
        bar = tqdm(range(p.n_epochs), desc=f"window {window:>4} gru4rec", unit="epoch", disable=bar_disabled(self.cfg.quiet),
                   leave=False, dynamic_ncols=True)
        for epoch in bar:
            order = self.order_rng.permutation(len(lengths)) if p.train_random_order else base_order
            loss, n = self._epoch(flat, offsets, order, sampler, log_support)
            if not math.isfinite(loss):
                raise SessrecError(f"gru4rec: the training loss is {loss} in window {window}, epoch {epoch + 1}: "
                                   "lower learning_rate (or use grad_cap)")
            steps += n
            self.epochs_done += 1
            self.history.append({"step": self.epochs_done, "window": window, "loss": loss, "lr": p.learning_rate})
            bar.set_postfix(loss=f"{loss:.4f}")
        bar.close()
        runtime = time.perf_counter() - start
        return {"train_loss": loss, "train_runtime": runtime, "train_steps": float(steps),
                "train_samples_per_second": p.n_epochs * len(lengths) / max(runtime, 1e-9),
                "train_events_per_second": p.n_epochs * (len(flat) - len(lengths)) / max(runtime, 1e-9)}

    def _epoch(self, flat: torch.Tensor, offsets: np.ndarray, order: np.ndarray, sampler: NegativeSampler | None,
               log_support: torch.Tensor | None) -> tuple[float, int]:
        """One pass of session-parallel mini-batches; returns (mean loss per lane-step, steps)."""
        hidden = [torch.zeros(min(self.p.batch_size, len(order)), h, device=self.device) for h in self.p.layers]
        total, weight, steps = 0.0, 0, 0
        for event in session_parallel(offsets, order, self.p.batch_size, stop_below_two=not self.p.n_sample):
            if isinstance(event, Reset):
                reset = torch.from_numpy(event.finished).to(self.device).unsqueeze(1)
                keep = torch.from_numpy(event.valid).to(self.device)
                hidden = [h.masked_fill(reset, 0.0)[keep] for h in hidden]
                continue
            x = flat[torch.from_numpy(event[0]).to(self.device)]
            y = flat[torch.from_numpy(event[1]).to(self.device)]
            hidden, loss = self._train_step(x, y, hidden, sampler, log_support)
            total += loss * x.shape[0]
            weight += x.shape[0]
            steps += 1
        return total / max(weight, 1), steps

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, hidden: list[torch.Tensor], sampler: NegativeSampler | None,
                    log_support: torch.Tensor | None) -> tuple[list[torch.Tensor], float]:
        p = self.p
        targets = y if sampler is None else torch.cat([y, sampler.next()])
        hidden = self.net.step(x, hidden)
        r = self.net.scores(hidden[-1], targets)
        if log_support is not None:  # logQ correction (the extra negatives were drawn with support**alpha)
            r = r - p.logq * torch.cat([log_support[y], p.sample_alpha * log_support[targets[y.shape[0]:]]])
        loss = LOSSES[p.loss](self.final_act(r), p) / p.batch_size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return [h.detach() for h in hidden], float(loss.detach())

    @torch.no_grad()
    def score(self, prefix: Batch) -> torch.Tensor:
        items = prefix[self.item_key].to(self.device)
        if self.net is None:
            return torch.zeros(items.shape[0], self.n_items - 1)
        self.net.eval()
        hidden = [torch.zeros(items.shape[0], h, device=self.device) for h in self.p.layers]
        known_any = torch.zeros(items.shape[0], dtype=torch.bool, device=self.device)
        for t in range(items.shape[1]):
            x = items[:, t]
            active = (x > 0) & self.seen[x]
            if not bool(active.any()):
                continue
            new = self.net.step(x, hidden)
            hidden = [torch.where(active.unsqueeze(1), n, h) for n, h in zip(new, hidden)]
            known_any |= active
        scores = self.net.scores(hidden[-1]).float()  # in place below: [rows, catalog] temporaries add up
        scores.masked_fill_(~known_any.unsqueeze(1), 0.0)  # a prefix of unseen items only: no preference,
        scores.masked_fill_(~self.seen, float("-inf"))  # and an item never trained on is a miss whatever k
        return scores[:, 1:].cpu()


def build(cfg: ExperimentConfig, schema: Schema) -> GRU4Rec:
    return GRU4Rec(cfg, schema, parse_params(GRU4RecParams, cfg.baseline_params, NAME))
