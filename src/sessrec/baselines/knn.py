"""Session-kNN machinery shared by V-SkNN, STAN and VSTAN, vectorised with scipy.sparse.

The session-rec implementations keep Python dicts (session -> items, item -> sessions) and
score one session at a time. Here the training sessions of all windows so far live in sparse
matrices, and a whole evaluation batch is scored at once:

1. candidates: ``Q @ index`` (query items x item->session index) gives, for every query row, the
   training sessions that share at least one item with it (session-rec's ``relevant_sessions``);
2. sampling: the ``sample_size`` most recent candidates (sessions are stored sorted by time, so
   these are the highest indices) or a random sample;
3. similarity: method-specific, from the sum of the query's item weights over the shared items
   (the same sparse product, with complex values: see :func:`candidates`);
4. the ``k`` most similar candidates (ties go to the more recent session);
5. the items of those neighbours are expanded pair by pair and their weighted votes summed.

Session time is the timestamp of a session's last click when the schema has a time feature;
without one, sessions are ordered by window, then by row within the window file ("recent"
sampling then means "from the latest windows / rows").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from sessrec.baselines.params import at_least, choice, unsupported
from sessrec.baselines.sessions import Encoded, encode, last_values, seconds_divisor, time_feature
from sessrec.data.loader import Batch, SessionTensors
from sessrec.errors import SessrecError
from sessrec.schema import Schema

log = logging.getLogger(__name__)


def check_neighbourhood(model: str, k: int, sample_size: int, sampling: str, extend: bool) -> None:
    """The parameters every kNN method shares."""
    at_least(model, "k", k, 1)
    at_least(model, "sample_size", sample_size, 0)
    choice(model, "sampling", sampling, ("recent", "random"))
    if extend:
        unsupported(model, "extend", True, "it would add evaluated sessions to the training data")


class SessionStore:
    """All training sessions seen so far, sorted by time (oldest first).

    ``positions`` is a CSR matrix (sessions x items) holding, for each distinct item of a session,
    the 1-based position of its last occurrence; ``index`` is the binary item -> sessions matrix.
    Item interaction counts and the session count give the IDF, updated at every window (the paper
    modified V-SkNN and VSTAN this way: footnote 10).
    """

    def __init__(self, n_items: int):
        self.n_items = n_items
        self.positions = sp.csr_matrix((0, n_items), dtype=np.float64)
        self.index = sp.csr_matrix((n_items, 0), dtype=np.float64)
        self.time = np.empty(0, dtype=np.float64)
        self.item_freq = np.zeros(n_items, dtype=np.float64)
        self.n_total = 0
        self._recent: dict[int, sp.csr_matrix] = {}

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def n_unique(self) -> np.ndarray:
        """Distinct items of each stored session."""
        return np.diff(self.positions.indptr)

    @property
    def seen(self) -> np.ndarray:
        """Items that occur in a training session: the only ones a kNN method can score."""
        return self.item_freq > 0

    @property
    def idf(self) -> np.ndarray:
        """``log(#sessions / #interactions of the item)``, as in session-rec; 0 for unseen items."""
        with np.errstate(divide="ignore"):
            return np.where(self.seen, np.log(max(self.n_total, 1) / np.maximum(self.item_freq, 1)), 0.0)

    def add(self, items: torch.Tensor, times: np.ndarray) -> None:
        """Append sessions (padded item rows) whose last clicks happened at ``times``."""
        enc = encode(items, self.n_items)
        self.item_freq += np.bincount(items[items != 0].numpy(), minlength=self.n_items)
        self.n_total += enc.n_rows
        chunk = sp.csr_matrix((enc.last_pos.astype(np.float64), enc.item, enc.indptr), shape=(enc.n_rows, self.n_items))
        order = np.argsort(times, kind="stable")
        if not np.array_equal(order, np.arange(order.size)):
            chunk, times = chunk[order], times[order]
        in_order = len(self) == 0 or times.size == 0 or times[0] >= self.time[-1]
        self.positions = sp.vstack([self.positions, chunk], format="csr")
        self.time = np.concatenate([self.time, times])
        if not in_order:  # a new session ended before an old one: re-sort everything (ties: older first)
            order = np.argsort(self.time, kind="stable")
            self.positions, self.time = self.positions[order], self.time[order]
        self._index()

    def _index(self) -> None:
        """The item -> sessions matrix of ``positions``; the cut ones (recent_index) are made again when asked."""
        binary = sp.csr_matrix((np.ones(self.positions.nnz), self.positions.indices, self.positions.indptr),
                               shape=self.positions.shape)
        self.index = binary.T.tocsr()
        self.index.sort_indices()
        self._recent.clear()

    def state_dict(self) -> dict[str, Any]:
        """The sessions, their times and the item counts (the index is made again from them)."""
        p = self.positions
        # item ids fit int32 and positions (a session's length at most) float32 exactly: half the bytes on disk
        return {"indptr": torch.from_numpy(p.indptr.astype(np.int64)), "indices": torch.from_numpy(p.indices.astype(np.int32)),
                "positions": torch.from_numpy(p.data.astype(np.float32)), "time": torch.from_numpy(self.time.copy()),
                "item_freq": torch.from_numpy(self.item_freq.copy()), "n_total": self.n_total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        item_freq = state["item_freq"].numpy().astype(np.float64)
        if item_freq.size != self.n_items:
            raise SessrecError(f"the saved sessions are over {item_freq.size - 1} items, this schema's over {self.n_items - 1}")
        indptr = state["indptr"].numpy()
        self.positions = sp.csr_matrix((state["positions"].numpy().astype(np.float64), state["indices"].numpy(), indptr),
                                       shape=(indptr.size - 1, self.n_items))
        self.time, self.item_freq = state["time"].numpy().astype(np.float64), item_freq
        self.n_total = int(state["n_total"])
        self._index()

    def recent_index(self, n: int) -> sp.csr_matrix:
        """The item -> sessions index cut to each item's ``n`` most recent sessions.

        Enough to find the ``n`` most recent sessions sharing an item with a query, and their
        exact overlap: such a session is, for each of its items, among that item's ``n`` most
        recent sessions (otherwise ``n`` sessions of the union would be more recent than it).
        """
        if n not in self._recent:
            ptr = self.index.indptr
            keep = np.minimum(np.diff(ptr), n)
            where = _ranges(ptr[1:] - keep, keep)
            indptr = np.concatenate(([0], np.cumsum(keep)))
            self._recent[n] = sp.csr_matrix((self.index.data[where], self.index.indices[where], indptr),
                                            shape=self.index.shape)
        return self._recent[n]


# e-fold decays between a query and its newest candidate beyond which a time decay counts from that candidate
# (time_gaps): e^-50 is far from float64's underflow (e^-745), and the ranking is the same either way
FAR_DECAYS = 50.0


def time_gaps(query_time: np.ndarray, ended: np.ndarray, row: np.ndarray, far: float,
              unit: float | None = None) -> np.ndarray:
    """``t - t_n``, seconds between each candidate's last click and its query's (candidates ``row``-major), for the time
    decays. 0 for a candidate that ended after its query (a served session dated in the past: counted as just ended,
    where a decay would weigh it up without bound); where the query is more than ``far`` after its newest candidate
    (a recommendation "now" from data years old, whose decays all underflow to 0), counted from that candidate, or
    from a whole number of ``unit`` after it (a decay of rounded days): a decay ``exp(-gap / scale)`` or
    ``r ** round(gap / unit)`` then differs by one factor over the row, the same ranking."""
    t = query_time.copy()
    if row.size:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        newest = np.maximum.reduceat(ended, starts)
        rows = row[starts]
        shift = t[rows] - newest
        too_far = shift > far
        if unit:
            shift = np.floor(shift / unit) * unit
        t[rows[too_far]] -= shift[too_far]
    return np.maximum(t[row] - ended, 0.0)


@dataclass
class Candidates:
    """Sampled candidate sessions of each query row (row-major, session index ascending in a row)."""

    row: np.ndarray
    session: np.ndarray
    overlap: np.ndarray  # sum of the query's item weights over the shared items (their number without weights)


@dataclass
class Neighbours:
    """The kept (query row, neighbour session) pairs and their similarity."""

    row: np.ndarray
    session: np.ndarray
    sim: np.ndarray


@dataclass
class Expansion:
    """Every item of every neighbour: which pair it belongs to, its position in the neighbour, and
    its last position in the query (0 if the query does not contain it)."""

    pair: np.ndarray
    starts: np.ndarray  # first element of each pair (pairs are contiguous)
    item: np.ndarray
    neighbour_pos: np.ndarray
    query_pos: np.ndarray

    def max_per_pair(self, values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values, self.starts) if values.size else values


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for each pair."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def candidates(store: SessionStore, q: Encoded, sample_size: int, sampling: str, seed: int,
               weights: np.ndarray | None = None) -> Candidates:
    """Training sessions sharing an item with each query; at most ``sample_size`` per query
    (0 = all): the most recent ones, or a uniform random subset with ``sampling='random'``, drawn by a generator
    seeded with ``seed`` and the query's items: the same query draws the same subset whatever was scored before it
    (a generator carried across calls drew differently in a resumed run, which skips the evaluations it refits over).

    With ``weights`` (one per distinct query item) the overlap of each candidate is the sum of
    the weights of the items it shares with its query. One sparse product gives both: the query
    matrix holds ``1 + i * weight``, so the real part counts shared items (never 0: the sparsity
    pattern is exactly the candidate set) and the imaginary part sums their weights.
    """
    recent = sampling == "recent" and sample_size > 0
    index = store.recent_index(sample_size) if recent else store.index
    values = np.ones(q.item.size) if weights is None else 1.0 + 1j * weights
    product = sp.csr_matrix((values, q.item, q.indptr), shape=(q.n_rows, store.n_items)) @ index
    product.sort_indices()
    counts = np.diff(product.indptr)
    keep = counts if sample_size <= 0 else np.minimum(counts, sample_size)
    if not recent and sample_size > 0 and (counts > sample_size).any():
        rows = np.repeat(np.arange(q.n_rows), counts)
        keys = np.zeros(product.nnz)
        first = q.indptr
        for r in np.flatnonzero(counts > sample_size):
            items = q.item[first[r]:first[r + 1]].tolist()
            keys[product.indptr[r]:product.indptr[r + 1]] = np.random.default_rng([seed, *items]).random(counts[r])
        order = np.lexsort((keys, rows))  # random order within each row
        rank = np.arange(product.nnz) - np.repeat(product.indptr[:-1], counts)
        where = np.sort(order[rank < np.repeat(keep, counts)])
    else:  # the last entries of a row are the most recent sessions
        where = _ranges(product.indptr[1:] - keep, keep)
    data = product.data[where]
    return Candidates(np.repeat(np.arange(q.n_rows), keep), product.indices[where].astype(np.int64),
                      data.imag if weights is not None else data)


def top_k(cand: Candidates, sim: np.ndarray, k: int, n_rows: int) -> Neighbours:
    """The ``k`` most similar candidates of each row (``-inf`` = not eligible); ties go to the
    more recent session, i.e. the higher index."""
    keep = sim > -np.inf
    counts = np.bincount(cand.row, minlength=n_rows)
    big = counts > k
    if big.any():
        # k-th largest similarity of each crowded row, from a padded [rows, width] partition
        starts = np.cumsum(counts) - counts
        sel = big[cand.row]
        rows = cand.row[sel]
        local = np.cumsum(big) - 1
        width = int(counts.max())
        pad = np.full((int(big.sum()), width), -np.inf)
        pad[local[rows], np.flatnonzero(sel) - starts[rows]] = sim[sel]
        kth = np.full(n_rows, -np.inf)
        kth[big] = np.partition(pad, width - k, axis=1)[:, width - k]
        above = sim > kth[cand.row]
        tied = (sim == kth[cand.row]) & keep
        room = k - np.bincount(cand.row, weights=above, minlength=n_rows)
        # among tied candidates keep the most recent ones (the last of their row) that fit
        n_tied = np.bincount(cand.row, weights=tied, minlength=n_rows)
        tied_so_far = np.cumsum(tied)
        before_row = np.concatenate(([0], tied_so_far))[starts]
        from_end = n_tied[cand.row] - (tied_so_far - before_row[cand.row]) + 1
        keep &= np.where(big[cand.row], above | (tied & (from_end <= room[cand.row])), True)
    return Neighbours(cand.row[keep], cand.session[keep], sim[keep])


def expand(store: SessionStore, q: Encoded, nb: Neighbours) -> Expansion:
    """All items of the neighbour sessions, with positions in the neighbour and in the query."""
    ptr = store.positions.indptr
    starts = ptr[nb.session]
    lens = ptr[nb.session + 1] - starts
    offsets = np.cumsum(lens) - lens
    where = _ranges(starts, lens)
    pair = np.repeat(np.arange(nb.row.size), lens)
    item = store.positions.indices[where].astype(np.int64)
    qkeys = q.row * store.n_items + q.item  # sorted: rows ascending, items ascending
    keys = nb.row[pair] * store.n_items + item
    at = np.minimum(np.searchsorted(qkeys, keys), max(qkeys.size - 1, 0))
    hit = qkeys[at] == keys if qkeys.size else np.zeros(keys.size, dtype=bool)
    query_pos = np.where(hit, q.last_pos[at] if qkeys.size else 0, 0)
    return Expansion(pair, offsets, item, store.positions.data[where], query_pos)


def vote(n_rows: int, n_items: int, rows: np.ndarray, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Dense ``[n_rows, n_items]`` sums of ``weights`` per (row, item)."""
    return sp.csr_matrix((weights, (rows, items)), shape=(n_rows, n_items)).toarray()


def finish(scores: np.ndarray, seen: np.ndarray) -> torch.Tensor:
    """Items never seen in training cannot be scored: lowest score. Drops the padding column.

    Kept in float64: float32 could merge nearly equal sums into ties, which the pessimistic
    ranking would count against the target.
    """
    scores[:, ~seen] = -np.inf
    return torch.from_numpy(scores[:, 1:])  # a view: a copy is another [rows, catalog] array to allocate


class Scorer(Protocol):
    """One kNN method: item scores ``[B, n_items]`` (float64) of the next item of each query; ``reads_time``: whether
    they depend on the query's time (``query_time``), for recommending from item ids alone where they do not."""

    name: str
    reads_time: bool

    def item_scores(self, store: SessionStore, q: Encoded, query_time: np.ndarray | None) -> np.ndarray: ...


class KnnLearner:
    """The learner protocol around a :class:`Scorer`: an incremental :class:`SessionStore`."""

    scores_are_logits = False

    def __init__(self, schema: Schema, scorer: Scorer):
        self.scorer = scorer
        self.item_key = schema.item_id.name
        self.n_items = schema.n_items
        tf = time_feature(schema)
        self.time_key = tf.name if tf is not None else None
        self.input_names = [self.item_key] + ([self.time_key] if self.time_key else [])
        if not getattr(scorer, "reads_time", True):  # the times order the stored sessions only
            self.scoring_names = [self.item_key]
        self.store = SessionStore(self.n_items)
        self._divisor: float | None = None
        self._next_order = 0.0
        if self.time_key is None:
            log.info("%s: no time feature in the schema: sessions are ordered by window, then row", scorer.name)

    @property
    def known_items(self) -> np.ndarray:
        """The items of the stored sessions: another item of a session gives no evidence (see the Learner protocol)."""
        return self.store.seen

    def _times(self, batch: Batch, lengths: np.ndarray) -> np.ndarray | None:
        """Seconds of each row's last click (``None`` without a time feature)."""
        if self.time_key is None or self.time_key not in batch:
            return None
        raw = last_values(batch[self.time_key].cpu(), lengths)
        if self._divisor is None:
            self._divisor = seconds_divisor(raw)
        return raw / self._divisor

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Add the window's sessions to the store (incremental: earlier windows stay)."""
        start = time.perf_counter()
        times = self._times(data.features, data.lengths.numpy())
        if times is None:  # window order, then row order
            times = self._next_order + np.arange(len(data), dtype=np.float64)
            self._next_order += len(data)
        self.store.add(data.items, times)
        runtime = time.perf_counter() - start
        return {"train_runtime": runtime, "train_samples_per_second": len(data) / max(runtime, 1e-9),
                "train_sessions_in_store": float(len(self.store))}

    def state_dict(self) -> dict[str, Any]:
        """Everything scoring and further windows need: the stored sessions, and how times are read (a checkpoint
        of a kNN run is resumed without refitting, and recommended from or served like a neural model's)."""
        return {"model": {"store": self.store.state_dict(), "divisor": self._divisor, "next_order": self._next_order}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = state["model"]
        self.store.load_state_dict(model["store"])
        self._divisor = None if model["divisor"] is None else float(model["divisor"])
        self._next_order = float(model["next_order"])

    @torch.no_grad()
    def score(self, prefix: Batch) -> torch.Tensor:
        q = encode(prefix[self.item_key].cpu(), self.n_items)
        query_time = self._times(prefix, q.length)
        return finish(self.scorer.item_scores(self.store, q, query_time), self.store.seen)
