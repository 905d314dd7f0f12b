"""Micro-batching: the sessions of concurrent requests scored in one forward pass.

Requests queue up; one worker takes every request waiting (at most ``max_batch``) and, while
other requests are still being read (``arrive``; not one that began more than ``STALLED`` ago: a slow
client), waits for them at most ``max_wait`` seconds,
then scores the batch in its own thread, so the event loop keeps reading requests meanwhile. A
lone request waits for nothing, so batching costs no latency when there is no concurrency.
Written here because a batcher must know the HTTP layer's requests in flight; the ASGI stack
has none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from sessrec.data.catalog import Encoded
from sessrec.recommend import rows as top_rows
from sessrec.serve.models import ServedModel

log = logging.getLogger(__name__)


@dataclass
class Job:
    model: ServedModel  # the model whose catalog encoded the session: it scores it, even after a swap
    session: Encoded
    k: int
    exclude_seen: bool
    future: asyncio.Future


@dataclass
class Answer:
    items: list[Any]
    scores: list[float]


def score_jobs(jobs: Sequence[Job]) -> list[Answer | BaseException]:
    """Answers of a batch of jobs, one forward pass per model among them (one, except during a swap)."""
    out: list[Answer | BaseException] = [RuntimeError("not scored")] * len(jobs)
    by_model: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        by_model.setdefault(id(job.model), []).append(i)
    for rows in by_model.values():
        model = jobs[rows[0]].model
        try:
            ks = [jobs[i].k for i in rows]
            top = model.rec.recommend_encoded([jobs[i].session for i in rows], ks, [jobs[i].exclude_seen for i in rows],
                                              model.scorer)
            catalog = model.rec.catalog
            for i, ids, scores in zip(rows, *top_rows(*top, ks)):
                out[i] = Answer(catalog.decode(ids) if catalog is not None else ids, scores)
        except Exception as e:  # answered as an error to these requests; the worker goes on
            log.exception("scoring a batch of %d sessions failed", len(rows))
            for i in rows:
                out[i] = e
    return out


STALLED = 0.05  # seconds: a request read for longer is not waited for (a local one takes well under a millisecond)


class MicroBatcher:
    """Gathers jobs into batches of at most ``max_batch`` (1 = no batching) and scores them."""

    def __init__(self, max_batch: int, max_wait: float):
        self.max_batch, self.max_wait = max_batch, max_wait
        self._arriving: dict[int, float] = {}  # requests being read and encoded -> when they began (loop time)
        self._tokens = 0
        self.batches = 0  # scored so far
        self.sessions = 0
        self.largest = 0  # sessions of the largest batch
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sessrec-score")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    def arrive(self) -> int:
        """A request begins to be read: the worker may wait for it (``arrived`` with the token when it is)."""
        self._tokens += 1
        self._arriving[self._tokens] = asyncio.get_running_loop().time()
        return self._tokens

    def arrived(self, token: int) -> None:
        self._arriving.pop(token, None)

    def _still_arriving(self, now: float) -> bool:
        """Whether a request began to be read within ``STALLED`` seconds: one read for longer (a slow or stalled client)
        would otherwise hold every batch for ``max_wait``, as long as it liked."""
        return any(now - began < STALLED for began in self._arriving.values())

    async def submit(self, model: ServedModel, session: Encoded, k: int, exclude_seen: bool) -> Answer:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(model, session, k, exclude_seen, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            self._take_waiting(jobs)
            deadline = loop.time() + self.max_wait
            while len(jobs) < self.max_batch and loop.time() < deadline and self._still_arriving(loop.time()):
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                self._take_waiting(jobs)
            jobs = [j for j in jobs if not j.future.done()]  # a client that went away cancelled its future
            if not jobs:
                continue
            self.batches += 1
            self.sessions += len(jobs)
            self.largest = max(self.largest, len(jobs))
            answers = await loop.run_in_executor(self._pool, _no_grad_score, jobs)
            for job, answer in zip(jobs, answers):
                if job.future.done():
                    continue
                if isinstance(answer, BaseException):
                    job.future.set_exception(answer)
                else:
                    job.future.set_result(answer)

    def _take_waiting(self, jobs: list[Job]) -> None:
        while len(jobs) < self.max_batch and not self._queue.empty():
            jobs.append(self._queue.get_nowait())


def _no_grad_score(jobs: Sequence[Job]) -> list[Answer | BaseException]:
    with torch.inference_mode():
        return score_jobs(jobs)
