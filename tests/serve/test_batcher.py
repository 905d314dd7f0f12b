"""Micro-batching: concurrent requests share forward passes and get the answers they would alone."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sessrec.recommend import Recommender
from sessrec.serve.batcher import Job, score_jobs
from sessrec.serve.models import load_served
from tests.conftest import written_sessions
from tests.serve.conftest import running


def _requests(data, rec, n):
    """``n`` different requests: written sessions (cycled, cut to different lengths), several k, exclude_seen or not."""
    rows, _ = written_sessions(data, rec, 16)
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        cut = max(1, len(row["item_id"]) - i // len(rows))
        out.append({"items": rec.catalog.decode(row["item_id"][:cut]), "timestamps": row["timestamp"][:cut],
                    "k": 1 + i % 12, "exclude_seen": i % 3 == 0})
    return out


async def _ask_all(base_url, requests):
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await asyncio.gather(*(client.post("/recommend", json=r) for r in requests))


@pytest.mark.parametrize("max_batch", [16, 1])
def test_concurrent_requests_share_forward_passes_with_the_same_answers(catalog_data, catalog_run, max_batch):
    rec = Recommender.load(catalog_run / "checkpoint-last")
    requests = _requests(catalog_data, rec, 64)
    want = [rec.recommend([{"items": r["items"], "timestamps": r["timestamps"]}], k=r["k"],
                          exclude_seen=r["exclude_seen"]).ids[0] for r in requests]
    with running(catalog_run, watch=False, max_batch=max_batch, batch_wait_ms=50) as (client, _):
        answers = asyncio.run(_ask_all(str(client.base_url), requests))
        batching = client.get("/metadata").json()["batching"]
    assert [a.status_code for a in answers] == [200] * 64
    assert [a.json()["items"] for a in answers] == want
    assert batching["sessions"] == 64 and batching["largest_batch"] <= max_batch
    if max_batch == 1:
        assert batching["batches"] == 64
    else:  # 64 requests at once: far fewer forward passes
        assert batching["batches"] <= 32 and batching["largest_batch"] > 1


def test_a_batch_scores_each_session_with_the_model_that_encoded_it(catalog_data, catalog_run):
    """During a swap a batch may hold sessions of the old and the new model: each gets its own model's answer."""
    models = [load_served(catalog_run / f"checkpoint-000{v}", "eager", v) for v in (1, 2)]
    rows, _ = written_sessions(catalog_data, models[0].rec, 3)
    sessions = [{"items": models[0].rec.catalog.decode(r["item_id"]), "timestamps": r["timestamp"]} for r in rows]
    jobs = [Job(models[i % 2], models[i % 2].rec.encode(s), 5, False, None) for i, s in enumerate(sessions * 2)]
    answers = score_jobs(jobs)
    for job, answer, session in zip(jobs, answers, sessions * 2):
        assert answer.items == job.model.rec.recommend([session], k=5).ids[0]
    assert answers[0].items != answers[3].items  # the same session, the other model: another answer


def test_a_request_read_for_long_is_not_waited_for():
    """A client that sent its body slowly (or stalled) counted as arriving for as long as it liked, and every batch
    waited --batch-wait-ms for it: the worker waits only for requests that began to be read within STALLED."""
    from sessrec.serve.batcher import STALLED, MicroBatcher

    async def check():
        batcher = MicroBatcher(16, 0.02)
        now = asyncio.get_running_loop().time()
        assert not batcher._still_arriving(now)
        stalled = batcher.arrive()
        assert batcher._still_arriving(now) and not batcher._still_arriving(now + STALLED + 0.01)
        fresh = batcher.arrive()
        assert batcher._still_arriving(now + STALLED / 2)
        batcher.arrived(fresh)
        batcher.arrived(stalled)
        assert not batcher._still_arriving(now)

    asyncio.run(check())
