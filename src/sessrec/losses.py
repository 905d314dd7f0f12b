"""Next-item losses over large catalogs: full softmax in chunks, and sampled softmax with logQ correction.

Both compute the cross-entropy of ``(x @ weight.T + bias) / temperature`` against target columns:

* :func:`full_cross_entropy` is exact (the same value and gradients as ``F.cross_entropy`` with
  ``label_smoothing``), fused with its gradient; when the ``[N, n_items]`` logits would exceed
  ``FULL_LOGITS_LIMIT`` elements it walks the catalog in chunks, keeping a running log-sum-exp, and
  recomputes each chunk's logits in the backward pass. PyTorch has no fused linear +
  cross-entropy on CPU, so this is ours (it is also faster than ``F.cross_entropy`` on small
  catalogs: fewer passes over the logits, see :class:`_LinearCrossEntropy`).
* :func:`sampled_softmax_loss` scores the targets and ``n_samples`` negatives drawn once per batch
  from a log-uniform (Zipfian) distribution over item ranks — right when item ids are ranked by
  decreasing popularity, as ``sessrec prepare`` and the paper's preprocessing write them — with
  the logQ correction (subtract the log of each item's chance to be drawn at least once: the draws are
  kept once each) and accidental
  hits (a negative equal to the row's target) removed, as in Transformers4Rec's sampled softmax
  (whose correction comes before the temperature, ``(z - log Q) / T``; here ``z / T - log Q``, the
  correction of the scores the softmax is over: the same with the default temperature 1).

Two losses over negatives drawn uniformly for each positive (:func:`uniform_negatives`), which
rank without a softmax over the catalog:

* :func:`gbce_loss`: gSASRec's generalised binary cross-entropy (Petrov & Macdonald, RecSys 2023),
  whose calibration ``t`` undoes the overconfidence that negative sampling gives plain BCE.
* :func:`bpr_max_loss`: BPR-max with score regularisation (Hidasi & Karatzoglou, CIKM 2018), the
  pairwise loss of GRU4Rec.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sessrec.runtime import private_op

FULL_LOGITS_LIMIT = 2**25  # elements (128 MB of float32); above it the logits are computed in chunks
CHUNK_ELEMENTS = 2**24
FULL_PRODUCT_PER_COLUMN = 128  # pair_scores: catalog items per scored column below which the full product is faster


_WORKSPACE: dict[torch.device, torch.Tensor] = {}


def _take_workspace(numel: int, device: torch.device) -> torch.Tensor:
    """A float32 buffer of at least ``numel`` elements, reused from step to step.

    A fresh ``[N, n_items]`` tensor each step costs page faults (large blocks come from ``mmap``):
    on a 2-core CPU, a third of the time of the logits ``addmm`` for 8,000 items (measured). The
    buffer is given back once the backward pass has used it; a second loss in flight gets its own.
    """
    buf = _WORKSPACE.pop(device, None)
    if buf is None or buf.numel() < numel:
        buf = torch.empty(numel, device=device)
    return buf


def _give_workspace(buf: torch.Tensor) -> None:
    kept = _WORKSPACE.get(buf.device)
    if kept is None or kept.numel() < buf.numel():
        _WORKSPACE[buf.device] = buf


def release_workspace() -> None:
    """Drop the logits buffers kept between training steps, for evaluation to use their memory."""
    _WORKSPACE.clear()


def softmax_(z: torch.Tensor) -> torch.Tensor:
    """Row softmax of a 2-d tensor, written over it. One fused kernel, ``aten._softmax.out`` (private);
    where it is missing or fails, the same in public in-place operations (three passes)."""
    return private_op("torch.ops.aten._softmax.out", lambda: torch.ops.aten._softmax.out, _softmax_public,
                      z, 1, False, out=z)


def _softmax_public(z: torch.Tensor, dim: int, half_to_float: bool, out: torch.Tensor) -> torch.Tensor:
    z.sub_(z.amax(dim, keepdim=True)).exp_()
    return z.div_(z.sum(dim, keepdim=True))


def _chunk_size(n_rows: int, n_items: int) -> int:
    if n_rows * n_items <= FULL_LOGITS_LIMIT:
        return n_items
    return max(256, min(n_items, CHUNK_ELEMENTS // max(n_rows, 1)))


class _LinearCrossEntropy(torch.autograd.Function):
    """Cross-entropy of ``(x @ weight.T + bias) * inv_temp`` fused with its gradient.

    One chunk (small catalogs): the softmax, written over the logits by one fused kernel, is kept
    for the backward pass, and each row's log-sum-exp is read off its target's probability
    (``lse = z_t - log p_t``; recomputed for the rare rows where ``p_t`` nearly underflows).
    Several chunks (large catalogs): only a running log-sum-exp is kept, and each chunk's logits
    are recomputed in the backward pass. The logits are the one ``[N, C]`` tensor: the temperature
    and the label-smoothing terms act on ``[N]``, ``[C]`` or ``[C, d]`` factors instead (each pass
    over ``[N, C]`` costs as much as a tenth of the matrix product on a 2-core CPU, measured), so
    each direction makes one pass over the logits besides its matrix products.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, targets, smoothing: float, inv_temp: float):
        xs = x.float() * inv_temp  # z = xs @ w.T + bs: the temperature on [N, d] and [C]
        bs = None if bias is None else bias.float() * inv_temp
        n, c = xs.shape[0], weight.shape[0]
        chunk = _chunk_size(n, c)
        target_logit = (xs * weight[targets].float()).sum(1)
        if bs is not None:
            target_logit += bs[targets]
        probs = ctx.workspace = None
        if chunk == c:
            ctx.workspace = _take_workspace(n * c, x.device)
            probs = _logits(xs, weight, bs, out=ctx.workspace[:n * c].view(n, c))
            softmax_(probs)  # in place: the logits are not needed any more
            p_target = probs.gather(1, targets[:, None]).squeeze(1)
            lse = target_logit - p_target.log()
            tiny = p_target < 1e-30  # log of a (nearly) underflowed float: recompute those rows
            if tiny.any():
                lse[tiny] = torch.logsumexp(_logits(xs[tiny], weight, bs), dim=1)
        else:
            lse = torch.full((n,), float("-inf"), device=x.device)
            for start in range(0, c, chunk):
                z = _logits(xs, weight[start:start + chunk], None if bs is None else bs[start:start + chunk])
                lse = torch.logaddexp(lse, torch.logsumexp(z, dim=1))
        w_sum = weight.float().sum(0) if smoothing else None  # column sums: the smoothing terms, here and backward
        if smoothing:  # the mean logit of each row
            mean_logit = xs @ w_sum / c + (0.0 if bs is None else bs.mean())
            loss = (1.0 - smoothing) * (lse - target_logit) + smoothing * (lse - mean_logit)
        else:
            loss = lse - target_logit
        ctx.save_for_backward(x, weight, bias, targets, lse, probs, w_sum)
        ctx.smoothing, ctx.inv_temp, ctx.chunk = smoothing, inv_temp, chunk
        if ctx.workspace is not None and not any(ctx.needs_input_grad):
            _give_workspace(ctx.workspace)  # no backward pass will use it
        return loss.mean()

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, targets, lse, probs, w_sum = ctx.saved_tensors
        s, inv_temp, chunk = ctx.smoothing, ctx.inv_temp, ctx.chunk
        x32 = x.float()
        n, c = x32.shape[0], weight.shape[0]
        # d loss / d z_ij = scale * (softmax_ij - (1 - s) [j == t_i] - s / c)
        scale = grad.float() * inv_temp / n
        gx = torch.zeros_like(x32)
        gw = torch.empty(weight.shape, device=weight.device, dtype=torch.float32)
        need_gb = bias is not None and ctx.needs_input_grad[2]
        gb = torch.empty(bias.shape, device=bias.device, dtype=torch.float32) if need_gb else None
        rows = torch.arange(n, device=x.device)
        xs = x32 * scale
        xt = x32 * inv_temp if probs is None else None  # chunks: their logits are recomputed
        for start in range(0, c, chunk):
            end = min(start + chunk, c)
            w = weight[start:end].float()
            if probs is not None:
                g = probs
            else:
                bs = None if bias is None else bias[start:end].float() * inv_temp
                g = _logits(xt, w, bs).sub_(lse[:, None]).exp_()
            inside = (targets >= start) & (targets < end)
            g[rows[inside], targets[inside] - start] -= 1.0 - s
            gx.addmm_(g, w)
            torch.mm(g.t(), xs, out=gw[start:end])
            if need_gb:
                torch.sum(g, 0, out=gb[start:end])
        gx.mul_(scale)
        if need_gb:
            gb.mul_(scale)
        if s:  # the uniform part s / c of the smoothed target: rank-one terms
            gx -= scale * s / c * w_sum
            gw -= scale * s / c * x32.sum(0)
            if need_gb:
                gb -= scale * s * n / c
        if ctx.workspace is not None:
            _give_workspace(ctx.workspace)
        return gx.to(x.dtype), gw.to(weight.dtype), None if gb is None else gb.to(bias.dtype), None, None, None


def _logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    w = w.float().t()
    return torch.mm(x, w, out=out) if b is None else torch.addmm(b, x, w, out=out)


def full_cross_entropy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                       label_smoothing: float = 0.0, temperature: float = 1.0) -> torch.Tensor:
    """Mean cross-entropy of ``(x @ weight.T + bias) / temperature`` vs target columns (as ``F.cross_entropy``
    with ``label_smoothing``), computed in chunks when the full logits would exceed ``FULL_LOGITS_LIMIT``."""
    return _LinearCrossEntropy.apply(x, weight, bias, targets, label_smoothing, 1.0 / temperature)


def log_uniform_expected_counts(ids: torch.Tensor, n_items: int, n_draws: int) -> torch.Tensor:
    """Each rank's chance to be among ``n_draws`` log-uniform draws over ``0..n_items-1`` (drawn at least once: the
    draws are kept once each, as in TensorFlow's unique sampler), the Q of the logQ correction."""
    k = ids.double()
    p = (torch.log(k + 2.0) - torch.log(k + 1.0)) / math.log(n_items + 1.0)
    return -torch.expm1(n_draws * torch.log1p(-p))  # 1 - (1 - p)^n: probability of being drawn at least once


def sample_log_uniform(n_items: int, n_draws: int, device: torch.device) -> torch.Tensor:
    """Unique ranks drawn log-uniformly (rank r with probability log((r+2)/(r+1)) / log(n_items+1))."""
    u = torch.rand(n_draws, device=device, dtype=torch.float64)
    ranks = (torch.exp(u * math.log(n_items + 1.0)) - 1.0).long().clamp_(0, n_items - 1)
    return torch.unique(ranks)


def sampled_softmax_loss(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                         n_samples: int, label_smoothing: float = 0.0, temperature: float = 1.0) -> torch.Tensor:
    """Softmax cross-entropy over each row's target and ``n_samples`` shared sampled negatives (logQ-corrected)."""
    n_items = weight.shape[0]
    negatives = sample_log_uniform(n_items, n_samples, x.device)
    pos = ((x * weight[targets]).sum(1) + bias[targets]).float() / temperature
    neg = F.linear(x, weight[negatives], bias[negatives]).float() / temperature
    pos = pos - torch.log(log_uniform_expected_counts(targets, n_items, n_samples)).float()
    neg = neg - torch.log(log_uniform_expected_counts(negatives, n_items, n_samples)).float()
    hit = negatives.unsqueeze(0) == targets.unsqueeze(1)  # accidental hits are not negatives
    logits = torch.cat([pos.unsqueeze(1), neg.masked_fill(hit, float("-inf"))], dim=1)
    logp = torch.log_softmax(logits, dim=1)
    nll = -logp[:, 0]
    if label_smoothing == 0.0:
        return nll.mean()
    valid = torch.cat([torch.ones_like(hit[:, :1]), ~hit], dim=1)
    smooth = -(logp.masked_fill(~valid, 0.0).sum(1) / valid.sum(1))
    return ((1.0 - label_smoothing) * nll + label_smoothing * smooth).mean()


def uniform_negatives(n_rows: int, n_negatives: int, n_items: int, device: torch.device) -> torch.Tensor:
    """``[n_rows, n_negatives]`` column ids drawn uniformly (with replacement) from ``0..n_items-1``, per row.

    From torch's global generator, as dropout: seeded by the run, saved in its checkpoints."""
    return torch.randint(0, n_items, (n_rows, n_negatives), device=device)


def pair_scores(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, columns: torch.Tensor) -> torch.Tensor:
    """``[N, m]`` scores ``x_i · weight[c] + bias[c]`` of the columns ``c = columns[i]`` of each row.

    Up to ``FULL_PRODUCT_PER_COLUMN * m`` items (and ``FULL_LOGITS_LIMIT`` logits) the whole
    ``[N, n_items]`` product and a gather are faster than gathering ``N * m`` embedding rows, whose
    gradient is a scatter-add: forward and backward, N = 640 rows, 2 cores, d 64-128, m = 256:
    12 against 160 ms at 4,000 items, equal near 128-200 items per column. Both give the same values."""
    n_items, m = weight.shape[0], columns.shape[1]
    if n_items <= FULL_PRODUCT_PER_COLUMN * m and x.shape[0] * n_items <= FULL_LOGITS_LIMIT:
        return F.linear(x, weight, bias).gather(1, columns)
    scores = torch.einsum("nd,nmd->nm", x, weight[columns])
    return scores if bias is None else scores + bias[columns]


def gbce_loss(pos: torch.Tensor, neg: torch.Tensor, n_items: int, t: float) -> torch.Tensor:
    """gBCE of gSASRec (Petrov & Macdonald, "gSASRec: Reducing Overconfidence in Sequential
    Recommendation Trained with Negative Sampling", RecSys 2023, eq. 10-12).

    ``pos [N]``: the positives' scores ``s+``; ``neg [N, k]``: the scores ``s-_j`` of ``k`` negatives
    sampled uniformly from a catalog of ``n_items`` items. With the sampling rate
    ``alpha = k / (n_items - 1)`` and ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``::

        loss = mean over rows of  -1/(k+1) * ( beta * log sigmoid(s+) + sum_j log(1 - sigmoid(s-_j)) )

    i.e. the binary cross-entropy with the positive's probability raised to the power ``beta``,
    averaged over the ``k + 1`` terms as in the authors' code. ``t = 0`` gives ``beta = 1``, plain
    BCE; ``t = 1`` gives ``beta = alpha``, which calibrates the sigmoid to the probabilities of a
    full softmax.
    """
    k = neg.shape[1]
    alpha = k / (n_items - 1)
    beta = alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    pos, neg = pos.float(), neg.float()
    total = beta * F.logsigmoid(pos) + F.logsigmoid(-neg).sum(1)  # log(1 - sigmoid(s)) = log sigmoid(-s)
    return -(total / (k + 1)).mean()


def bpr_max_loss(pos: torch.Tensor, neg: torch.Tensor, reg: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains for Session-based
    Recommendations", CIKM 2018, eq. 6-7) with its score regularisation.

    ``pos [N]``: the positives' scores ``r_i``; ``neg [N, k]``: the negatives' scores ``r_j``;
    ``valid [N, k]``: the negatives to use (False: an accidental hit of the positive). With
    ``s_j = softmax_j(r_j)`` over a row's valid negatives::

        loss = mean over rows of  -log( sum_j s_j * sigmoid(r_i - r_j) ) + reg * sum_j s_j * r_j**2

    The softmax weights let the hardest negatives dominate (BPR's gradient vanishes with many
    easy negatives); the regulariser keeps the negatives' scores near 0. A row whose negatives are
    all accidental hits has nothing to rank against: it is left out of the mean (its -log(0) would
    add ~55 and shrink the other rows' gradients). The scores are used as they are: GRU4Rec's
    ``bpr-max`` applies an ELU to them first (``elu_param``; the ``gru4rec`` baseline does).
    """
    pos, neg = pos.float(), neg.float()
    masked = neg if valid is None else neg.masked_fill(~valid, float("-inf"))
    weights = torch.softmax(masked, dim=1).nan_to_num(0.0)  # a row without a valid negative weighs none
    ranking = -torch.log((weights * torch.sigmoid(pos[:, None] - neg)).sum(1) + 1e-24)
    score_reg = (weights * neg.square()).sum(1)
    rows = ranking + reg * score_reg
    if valid is None:
        return rows.mean()
    has = valid.any(1)
    return (rows * has).sum() / has.sum().clamp(min=1)
