"""Backends answer as PyTorch eager does; a run's new checkpoint-last is swapped in while requests go on."""

from __future__ import annotations

import shutil
import threading
import time
import weakref

import httpx
import pytest
import torch

from sessrec.io import atomic_replace_dir
from sessrec.recommend import Recommender
from tests.conftest import written_sessions
from tests.serve.conftest import running


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_exported_backends_answer_as_eager(catalog_data, catalog_run, backend):
    rec = Recommender.load(catalog_run / "checkpoint-last")
    rows, written = written_sessions(catalog_data, rec, 4)
    ids, scores = rec.recommend_batch(written, k=10)
    with running(catalog_run, watch=False, backend=backend) as (client, _):
        assert client.get("/metadata").json()["backend"] == backend
        for i, row in enumerate(rows):
            body = client.post("/recommend", json={"items": rec.catalog.decode(row["item_id"]),
                                                   "timestamps": row["timestamp"]}).json()
            assert body["items"] == rec.catalog.decode(ids[i].tolist())
            assert torch.allclose(torch.tensor(body["scores"]), scores[i], atol=1e-4)


def _replace_last(run, source, damage: bool = False):
    """What a run does after a window: a new checkpoint-last, renamed into place (``damage``: with
    its weights altered before, as a disk fault would)."""
    tmp = run / ".checkpoint-last.tmp"
    shutil.copytree(source, tmp)
    if damage:
        weights = tmp / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8] + b"garbage!")
    atomic_replace_dir(tmp, run / "checkpoint-last")


def test_a_new_checkpoint_is_swapped_in_while_requests_go_on(catalog_data, catalog_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(catalog_run, run)
    later = shutil.move(run / "checkpoint-0002", tmp_path / "checkpoint-0002")
    _replace_last(run, run / "checkpoint-0001")  # the run as it was after window 1
    recs = {1: Recommender.load(run / "checkpoint-0001"), 2: Recommender.load(later)}
    rows, _ = written_sessions(catalog_data, recs[1], 1)
    session = {"items": recs[1].catalog.decode(rows[0]["item_id"]), "timestamps": rows[0]["timestamp"]}
    want = {v: rec.recommend([session], k=10).ids[0] for v, rec in recs.items()}
    assert want[1] != want[2]  # the two windows' models answer differently: the swap shows

    with running(run, watch_interval=0.05) as (client, server):
        assert client.get("/health").json()["version"] == 1
        first = weakref.ref(server.model.rec.learner)
        answers: list[tuple[int, dict]] = []
        stop = threading.Event()

        def keep_asking() -> None:
            with httpx.Client(base_url=client.base_url, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/recommend", json=session)
                    answers.append((r.status_code, r.json()))

        threads = [threading.Thread(target=keep_asking) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            _wait(lambda: len(answers) >= 20)
            _replace_last(run, later)  # window 2 trained: a new checkpoint-last
            _wait(lambda: client.get("/health").json()["version"] == 2)
            seen = len(answers)
            _wait(lambda: len(answers) >= seen + 20)
            _wait(lambda: first() is None)  # the replaced model is freed (reference cycles too), not kept frozen
            # a damaged checkpoint-last is not swapped in: the server goes on with what it has
            _replace_last(run, run / "checkpoint-0001", damage=True)
            seen = len(answers)
            _wait(lambda: len(answers) >= seen + 20)
            time.sleep(0.5)  # several checks
            assert client.get("/health").json()["version"] == 2
            # the copy goes on and completes (same manifest): now it is served (it was refused for good)
            shutil.copyfile(run / "checkpoint-0001" / "model.safetensors", run / "checkpoint-last" / "model.safetensors")
            _wait(lambda: client.get("/health").json()["version"] == 3)
            seen = len(answers)
            _wait(lambda: len(answers) >= seen + 20)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert {status for status, _ in answers} == {200}
    versions = [body["version"] for _, body in answers]
    assert set(versions) == {1, 2, 3}
    want[3] = want[1]
    for _, body in answers:
        assert body["items"] == want[body["version"]]


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("model, params", [("gru4rec", "{layers: 16, n_epochs: 1, batch_size: 16, n_sample: 8}"),
                                           ("vstan", "{k: 20, sample_size: 100}")])
def test_a_baseline_run_is_served_eager_with_the_original_ids(catalog_data, tmp_path, model, params):
    """A GRU4Rec or kNN checkpoint is served as it is recommended from (the eager backend: a baseline is not
    exported, and an exported backend says so)."""
    from sessrec.cli import main
    from sessrec.errors import SessrecError
    from sessrec.serve.app import Options, Server

    run = tmp_path / model
    assert main(["run", "--data-path", str(catalog_data), "--output-dir", str(run), "--model", model, "--baseline-params",
                 params, "--final-time-window-index", "3", "--quiet", "--no-compare-with-pop"]) == 0
    rec = Recommender.load(run)
    rows, _ = written_sessions(catalog_data, rec, 4)
    sessions = [{"items": rec.catalog.decode(row["item_id"]), "timestamps": row["timestamp"]} for row in rows]
    want = rec.recommend(sessions, k=10)
    with running(run, watch=False) as (client, _):
        described = client.get("/metadata").json()["model"]  # the baseline's own parameters, no neural defaults
        assert described["model_type"] == model and "d_model" not in described
        assert len(described["baseline_params"]) > 3  # the defaults too, not only the parameters given
        for i, session in enumerate(sessions):
            body = client.post("/recommend", json=session).json()
            assert body["items"] == want.ids[i] and len(body["items"]) == 10
            assert torch.allclose(torch.tensor(body["scores"]), torch.tensor(want.scores[i]), atol=1e-6)
    with pytest.raises(SessrecError, match="only neural models can be exported"):
        Server(Options(model_dir=run, port=0, backend="torchscript"))


@pytest.mark.parametrize("model, params", [("gru4rec", "{layers: 16, n_epochs: 1, batch_size: 16, n_sample: 8}"),
                                           ("vsknn", "{k: 20}")])
def test_a_baselines_untrained_items_are_named_unknown(catalog_data, tmp_path, model, params, capsys):
    """An item of the catalog that the baseline never trained on gives it no evidence: such a session was answered
    with tied zero scores, arbitrary items, exit 0 and no word (QA helper-62); it is named in ``unknown`` as an id the
    catalog lacks is, refused with strict, and a session of such items alone has no item known to the model. It stays
    in the session, as evaluation reads it (a kNN method weighs the other items by their positions)."""
    from sessrec.cli import main
    from sessrec.errors import SessrecError

    run = tmp_path / model
    assert main(["run", "--data-path", str(catalog_data), "--output-dir", str(run), "--model", model, "--baseline-params",
                 params, "--final-time-window-index", "2", "--quiet", "--no-compare-with-pop"]) == 0
    rec = Recommender.load(run)
    known = rec.learner.known_items
    untrained = [i for i in range(1, rec.schema.n_items) if not known[i] and rec.catalog.item.raw[i] is not None]
    trained = [i for i in range(1, rec.schema.n_items) if known[i]]
    assert untrained and trained  # items of windows 2-4 are in the catalog, window 1 trained the model
    new, old = rec.catalog.decode(untrained[:2]), rec.catalog.decode(trained[:2])
    mixed = rec.recommend([{"items": [old[0], new[0], old[1]]}], k=5)
    encoded = rec.encode({"items": [old[0], new[0], old[1]]})
    assert mixed.unknown == [[new[0]]] and encoded.ids.tolist() == [trained[0], untrained[0], trained[1]]
    ids, _ = rec.recommend_encoded([encoded], 5, False)  # what evaluation scores: the session as it is
    assert mixed.ids[0] == rec.catalog.decode(ids[0, :5].tolist())
    with pytest.raises(SessrecError, match="1 unknown item"):
        rec.recommend([{"items": [new[0], *old]}], k=5, strict=True)
    with pytest.raises(SessrecError, match="the session has no item known to the model"):
        rec.recommend([{"items": new}], k=5)
    with running(run, watch=False) as (client, _):
        answer = client.post("/recommend", json={"items": [old[0], new[0], old[1]], "k": 5}).json()
        assert answer["unknown"] == [new[0]] and answer["items"] == mixed.ids[0]
        assert client.post("/recommend", json={"items": new}).status_code == 422
    # the command line tells the kept untrained item from the skipped id the catalog lacks (QA helper-64)
    capsys.readouterr()
    assert main(["recommend", "--model-dir", str(run), "--items", f"{old[0]},{new[0]},nope,{old[1]}", "-k", "5"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == ["skipped 1 item(s) unknown to the model: 'nope'",
                        f"kept 1 item(s) the model never trained on, which give it no evidence: {new[0]!r}"], err
