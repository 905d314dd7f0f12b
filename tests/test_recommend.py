import json
import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sessrec.baselines.pop import MostPopular
from sessrec.checkpoint import save_checkpoint
from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.data.catalog import catalog_files
from sessrec.data.loader import SessionTensors, load_sessions, split_last_item
from sessrec.data.windows import window_file
from sessrec.errors import SessrecError
from sessrec.evaluation import evaluate, next_item_examples
from sessrec.experiment import run_experiment
from sessrec.recommend import Recommender, keep_last, recommend, rows, sessions_to_batch
from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema, load_schema
from sessrec.training import NeuralLearner
from tests.bodies.pairs import ALL_PAIRS, TINY
from tests.conftest import tiny_config, write_sessions, written_sessions

SCHEMA = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)])


class FixedScores:
    """A learner whose scores are given: item j+1 gets scores[j]."""

    scores_are_logits = False
    input_names = ["item"]

    def __init__(self, scores):
        self.scores = torch.tensor(scores, dtype=torch.float32)

    def score(self, prefix):
        return self.scores.expand(prefix["item"].shape[0], -1)


def test_top_k_and_exclude_seen():
    learner = FixedScores([0.1, 0.9, 0.5, 0.7, 0.3])  # items 1..5
    batch = sessions_to_batch([[2, 4], [1]], "item", max_len=4)
    ids, scores = recommend(learner, batch, k=3)
    assert ids.tolist() == [[2, 4, 3], [2, 4, 3]]
    ids, _ = recommend(learner, batch, k=3, exclude_seen=True, item_key="item")
    assert ids.tolist() == [[3, 5, 1], [2, 4, 3]]


def test_exclude_seen_excludes_the_items_before_the_last_max_len_too(tmp_path):
    rec = Recommender(FixedScores([1.0 - 0.1 * i for i in range(10)]), SCHEMA, max_len=3)  # item 1 scores best
    res = rec.recommend([[1, 2, 3, 4, 5, 6], [9]], k=3, exclude_seen=True)  # the model reads 4, 5, 6
    assert res.ids == [[7, 8, 9], [1, 2, 3]] and res.unknown == [[], []]
    sessions = write_sessions(tmp_path / "in.parquet", {"item": [[1, 2, 3, 4, 5, 6], [9]]})
    rec.recommend_file(sessions, tmp_path / "out.parquet", k=3, exclude_seen=True)
    assert pq.read_table(tmp_path / "out.parquet").column("item_ids").to_pylist() == [[7, 8, 9], [1, 2, 3]]
    # k past what is left: rows are shorter, as from recommend (the file's rows ended with the seen items at -inf)
    whole = rec.recommend([[1, 2, 3, 4, 5, 6], [9]], k=10, exclude_seen=True)
    assert whole.ids == [[7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 10]]
    rec.recommend_file(sessions, tmp_path / "all.parquet", k=10, exclude_seen=True)
    out = pq.read_table(tmp_path / "all.parquet").to_pydict()
    assert out["item_ids"] == whole.ids and all(len(s) == len(i) for s, i in zip(out["scores"], out["item_ids"]))
    assert out["scores"] == [pytest.approx(s) for s in whole.scores] and float("-inf") not in sum(out["scores"], [])
    with pytest.raises(SessrecError, match="item id 30 is outside"):
        rec.recommend([[30, 1, 2, 3]], exclude_seen=True)
    # from a file the same: an id the model does not have, not a schema to fix (QA helper-67)
    beyond = write_sessions(tmp_path / "beyond.parquet", {"item": [[30, 1, 2, 3]]})
    with pytest.raises(SessrecError, match=r"row 0: item id 30 in 'item' is >= the schema cardinality 30 \(int_domain max "
                                           r"29\); the model knows item ids 1..29 only$"):
        rec.recommend_file(beyond, tmp_path / "beyond-out.parquet", k=3)


def test_rows_leave_out_excluded_and_nan_scores_wherever_they_are():
    """topk puts NaN first: cutting a row at its count of finite scores kept the NaN items and cut good ones."""
    nan, inf = float("nan"), float("inf")
    ids = torch.tensor([[7, 3, 5, 9], [4, 2, 8, 1]])
    scores = torch.tensor([[nan, 0.9, 0.5, -inf], [0.8, 0.7, 0.1, 0.0]])
    assert rows(ids, scores, 3) == ([[3, 5], [4, 2, 8]], [[pytest.approx(0.9), pytest.approx(0.5)],
                                                          [pytest.approx(0.8), pytest.approx(0.7), pytest.approx(0.1)]])
    assert rows(ids, scores, [1, 2])[0] == [[3], [4, 2]]


def test_sessions_to_batch_keeps_the_most_recent_items():
    b = sessions_to_batch([[1, 2, 3, 4, 5], {"item": [7, 8]}], "item", max_len=3)
    assert b["item"].tolist() == [[3, 4, 5], [7, 8, 0]]
    with pytest.raises(SessrecError, match="no items"):
        sessions_to_batch([[]], "item", max_len=3)


@pytest.fixture(scope="module")
def sessions() -> SessionTensors:
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 30, (64, 8), generator=g)
    items[::3, 5:] = 0
    return SessionTensors({"item": items}, "item")


def trained(model_type: str, task: str, data: SessionTensors) -> NeuralLearner:
    cfg = ExperimentConfig.from_dict({"model_type": model_type, "task": task, **TINY, "max_steps": 2, "quiet": True,
                                      "per_device_train_batch_size": 16})
    learner = NeuralLearner(cfg, SCHEMA)
    learner.fit_window(data, 1)
    return learner


def recall_from_recommend(learner, prefixes: dict, targets: torch.Tensor, k: int) -> float:
    truncated = [row[row != 0].tolist() for row in prefixes["item"]]
    ids, _ = recommend(learner, sessions_to_batch(truncated, "item", 8), k=k)
    return (ids == targets.view(-1, 1)).any(1).float().mean().item()


@pytest.mark.parametrize("model_type,task", ALL_PAIRS)
def test_evaluation_equals_recommending_from_the_truncated_session(model_type, task, sessions):
    learner = trained(model_type, task, sessions)
    metrics = evaluate(learner, sessions, batch_size=32, top_ks=[10])
    prefix, targets = split_last_item(sessions.features, "item")
    assert recall_from_recommend(learner, prefix, targets, 10) == pytest.approx(metrics["recall_at_10"])
    # every next-item position: each prefix of every session predicts the item after it
    metrics = evaluate(learner, sessions, batch_size=32, top_ks=[10], last_item_only=False)
    prefixes, targets = next_item_examples(sessions.features, "item", last_item_only=False)
    assert metrics["n_sessions"] == int((sessions.lengths - 1).sum())
    assert recall_from_recommend(learner, prefixes, targets, 10) == pytest.approx(metrics["recall_at_10"])


def test_next_item_examples_of_every_position():
    batch = {"item": torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]), "price": torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 0.0]])}
    prefixes, targets = next_item_examples(batch, "item", last_item_only=False)
    assert prefixes["item"].tolist() == [[1, 0, 0, 0], [1, 2, 0, 0], [4, 0, 0, 0]]
    assert torch.equal(prefixes["price"], torch.tensor([[0.1, 0, 0, 0], [0.1, 0.2, 0, 0], [0.4, 0, 0, 0]]))
    assert targets.tolist() == [2, 3, 5]
    prefixes, targets = next_item_examples(batch, "item")
    assert prefixes["item"].tolist() == [[1, 2, 0, 0], [4, 0, 0, 0]] and targets.tolist() == [3, 5]


def test_every_position_evaluation_hand_computed():
    learner = FixedScores([0.1, 0.9, 0.5, 0.7, 0.3])  # ranks: item 2, 4, 3, 5, 1
    data = SessionTensors({"item": torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [3, 0, 0, 0]])}, "item")
    # predictions: 1 -> 2 (rank 1), 1 2 -> 3 (rank 3), 4 -> 5 (rank 4); the 1-item session is skipped
    m = evaluate(learner, data, batch_size=2, top_ks=[1, 3], last_item_only=False)
    assert m["n_sessions"] == 3
    assert m["recall_at_1"] == pytest.approx(1 / 3) and m["recall_at_3"] == pytest.approx(2 / 3)
    assert m["mrr_at_3"] == pytest.approx((1 + 1 / 3) / 3)
    last = evaluate(learner, data, batch_size=2, top_ks=[3])
    assert last["n_sessions"] == 2 and last["recall_at_3"] == pytest.approx(1 / 2)


# ---- Recommender: a saved model, loaded back --------------------------------------------------------
def trained_checkpoint(folder, schema, data, **overrides):
    """A NeuralLearner fitted for a few steps and saved as a checkpoint; returns (folder, learner)."""
    cfg = ExperimentConfig.from_dict({"d_model": 16, "n_layer": 1, "n_head": 2, "max_steps": 3, "quiet": True,
                                      "per_device_train_batch_size": 32, "session_seq_length_max": 8, **overrides})
    learner = NeuralLearner(cfg, schema)
    learner.fit_window(data, 1)
    return save_checkpoint(folder, 1, cfg, schema, {"model": learner}, {"windows": []}), learner


@pytest.fixture
def side_info(tiny_data):
    """The tiny sample schema and window 1 with every side-information feature."""
    schema = load_schema(tiny_data / "schema.pbtxt")
    feats = schema.model_features(True)
    return schema, load_sessions(tiny_data / "0001" / "train.parquet", schema, 8, feats)


def test_keep_last_keeps_the_most_recent_items():
    b = {"i": torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]), "f": torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0, 0, 0]])}
    out = keep_last(b, "i", 3)
    assert out["i"].tolist() == [[3, 4, 5], [6, 7, 0]]
    assert torch.allclose(out["f"], torch.tensor([[0.3, 0.4, 0.5], [0.6, 0.7, 0.0]]))
    assert keep_last(b, "i", 6)["i"].tolist() == [[1, 2, 3, 4, 5, 0], [6, 7, 0, 0, 0, 0]]


def test_recommender_gives_what_the_trained_learner_gives(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, learner = trained_checkpoint(tmp_path, SCHEMA, data, model_type="gpt2", task="clm")
    before = torch.get_rng_state()
    rec = Recommender.load(folder)
    assert torch.equal(torch.get_rng_state(), before)  # loading leaves the caller's RNG alone
    sessions = [[3, 4, 5], [7], list(range(1, 12))]
    res = rec.recommend(sessions, k=5, exclude_seen=True)
    want_ids, want_scores = recommend(learner, sessions_to_batch(sessions, "item", 8), 5, True, "item",
                                      seen=sessions_to_batch(sessions, "item", 11)["item"])
    assert res.ids == want_ids.tolist() and torch.allclose(torch.tensor(res.scores), want_scores)
    assert not set(res.ids[0]) & {3, 4, 5} and not set(res.ids[2]) & set(range(1, 12))
    with pytest.raises(SessrecError, match="item id 30 is outside this model's range 1..29"):
        rec.recommend([[1, 30]])
    # k: at most the items the model can recommend, as the server says (not silently fewer)
    assert len(rec.recommend([[3]], k=29).ids[0]) == 29
    with pytest.raises(SessrecError, match=r"k must be between 1 and 29 \(the items of the catalog\), got 30"):
        rec.recommend([[3]], k=30)


def test_python_inputs_a_notebook_user_writes(tmp_path):
    """Generators, numpy ids and k are taken; slips are one-line errors, not torch's: an unnested session, text or
    None ids, 0 (padding: it changed the answer), a fraction k."""
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, _ = trained_checkpoint(tmp_path, SCHEMA, data, model_type="gpt2", task="clm")
    rec = Recommender.load(folder)
    want = rec.recommend([[5, 10], [7]], k=3, exclude_seen=True)
    given = rec.recommend((s for s in (np.array([5, 10]), range(7, 8))), k=np.int64(3), exclude_seen=True)
    assert (given.ids, given.unknown) == (want.ids, [[], []])
    for sessions, k, message in [([5, 10, 20], 3, "a list of sessions is"), ([["5", "10"]], 3, "item id '5' is not a model id"),
                                 ([[5, None]], 3, "item id None is not a model id"), ([[5, 0, 10]], 3, "item id 0 is not"),
                                 ([[True, 5]], 3, "item id True is not"), ([[5]], 3.0, "k must be a whole number"),
                                 ([[10**20]], 3, "item id 100000000000000000000 is outside this model's range 1..29"),
                                 ([{"item": [5], "colour": [1]}], 3, "'colour' is not a feature of this model"),
                                 ({"item": [5]}, 3, "give a list of sessions")]:
        with pytest.raises(SessrecError, match=re.escape(message)):
            rec.recommend(sessions, k=k)


def test_recommend_command_items_and_parquet(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, _ = trained_checkpoint(tmp_path / "ckpt", SCHEMA, data)
    assert main(["recommend", "--model-dir", str(folder), "--items", "12,5,7", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = Recommender.load(folder).recommend([[12, 5, 7]], k=3).ids
    assert lines[0].split() == ["rank", "item_id", "score"]
    assert [int(x.split()[1]) for x in lines[1:]] == ids[0]
    sessions = write_sessions(tmp_path / "in.parquet", {"session_id": [10, 11], "item": [[12, 5, 7], list(range(1, 15))]})
    assert main(["recommend", "--model-dir", str(folder), "--input", str(sessions), "--output", str(tmp_path / "out.parquet"), "-k", "3"]) == 0
    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["session_id"] == [10, 11] and out["item_ids"][0] == ids[0]
    assert out["item_ids"][1] == Recommender.load(folder).recommend([list(range(1, 15))], k=3).ids[0]  # last 8 items
    assert main(["recommend", "--model-dir", str(folder)]) == 2
    assert "either --items" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(tmp_path / "nowhere"), "--items", "1"]) == 2
    assert f"--model-dir {tmp_path / 'nowhere'} does not exist: give a run folder or one of its checkpoint folders" \
        in capsys.readouterr().err
    for typed in ("12,5_0", "+12", "1\u0662"):  # what int() would read as another number
        assert main(["recommend", "--model-dir", str(folder), "--items", typed]) == 2
        assert f"--items must be comma-separated item ids such as 12,55,7 (got '{typed}')" in capsys.readouterr().err
    for typed, n in (("12,,5", 2), (",5", 1), (",", 1)):  # an empty id was dropped without a word (QA helper-67)
        assert main(["recommend", "--model-dir", str(folder), "--items", typed]) == 2
        assert f"--items has an empty value: value {n} of '{typed}'" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(folder), "--items", "12,5,7,", "-k", "3"]) == 0  # a trailing comma
    assert capsys.readouterr().out.splitlines() == lines


def test_side_information_model_needs_every_feature(tmp_path, side_info, capsys, tiny_data):
    schema, data = side_info
    folder, learner = trained_checkpoint(tmp_path / "ckpt", schema, data, use_side_information_features=True)
    assert main(["recommend", "--model-dir", str(folder), "--items", "3,4"]) == 2
    assert "reads more than item ids (sess_ccid_seq" in capsys.readouterr().err
    rec = Recommender.load(folder)
    session = {n: data.features[n][0][:3].tolist() for n in rec.input_names}
    ids = rec.recommend([session], k=4).ids
    assert ids == recommend(learner, sessions_to_batch([session], schema.item_id.name, 8), 4)[0].tolist()
    with pytest.raises(SessrecError, match="give each session as a dict"):
        rec.recommend([[3, 4]])
    continuous = next(n for n in rec.input_names if schema[n].is_continuous and not schema[n].is_time)
    nan = {**session, continuous: [float("nan")] + session[continuous][1:]}
    with pytest.raises(SessrecError, match=f"features.{continuous} must hold finite numbers"):
        rec.recommend([nan], k=4)  # it answered nothing, silently
    out = tmp_path / "recs.parquet"
    assert main(["recommend", "--model-dir", str(folder), "--input", str(tiny_data / "0002" / "test.parquet"), "--output", str(out)]) == 0
    assert pq.read_table(out).num_rows == pq.read_table(tiny_data / "0002" / "test.parquet").num_rows


def test_a_saved_most_popular_model_recommends_the_top_items(tmp_path):
    pop = MostPopular(None, SCHEMA)
    pop.fit_window(SessionTensors({"item": torch.tensor([[5, 5, 5, 9], [9, 2, 0, 0]])}, "item"), 1)
    folder = save_checkpoint(tmp_path, 1, ExperimentConfig(model_type="pop"), SCHEMA, {"model": pop}, {"windows": []})
    res = Recommender.load(folder).recommend([[5]], k=2, exclude_seen=True)
    assert res.ids == [[9, 2]] and res.scores == [[2.0, 1.0]]


# ---- original ids: a model of data made by sessrec prepare -------------------------------------------
def test_a_model_of_prepared_data_answers_in_original_ids(catalog_data, catalog_run):
    ckpt = catalog_run / "checkpoint-last"
    files = catalog_files(catalog_data)
    assert files and set(files) <= set(json.loads((ckpt / "manifest.json").read_text())["files"])
    assert all((catalog_run / "catalog" / f).is_file() and (catalog_run / "checkpoint-0001" / f).is_file() for f in files)
    rec = Recommender.load(ckpt)
    assert rec.catalog is not None and rec.side_features == ["category", "brand", "price_norm", "item_age_days_log_norm",
                                                             "hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]
    rows, written = written_sessions(catalog_data, rec)
    offline_ids, offline_scores = rec.recommend_batch(written, k=5)
    # the same sessions as original ids and times: every side feature comes back from the catalog
    sessions = [{"items": rec.catalog.decode(r["item_id"]), "timestamps": r["timestamp"]} for r in rows]
    assert all(i >= 1_000_000 for s in sessions for i in s["items"])  # sample_event_log's original ids
    res = rec.recommend(sessions, k=5)
    assert res.ids == [rec.catalog.decode(row) for row in offline_ids.tolist()]
    assert torch.allclose(torch.tensor(res.scores), offline_scores, atol=1e-5)
    assert res.unknown == [[]] * len(rows)
    # an unknown item is skipped and reported, or refused with strict; model ids stay available
    with_unknown = {"items": ["nope", *sessions[0]["items"]], "timestamps": [0.0, *sessions[0]["timestamps"]]}
    res = rec.recommend([with_unknown], k=5)
    assert res.unknown == [["nope"]] and res.ids[0] == rec.catalog.decode(offline_ids[0].tolist())
    with pytest.raises(SessrecError, match="session 0: 1 unknown item"):
        rec.recommend([with_unknown], k=5, strict=True)
    with pytest.raises(SessrecError, match=r"no item known to the model \(unknown: 'nope', ' 12'\)"):
        rec.recommend([["nope", " 12"]])
    one = sessions[0]
    with pytest.raises(SessrecError, match=r"features.price_norm must hold finite numbers \(within float32"):
        rec.recommend([{**one, "features": {"price_norm": [1e39] * len(one["items"])}}])
    # timestamps are checked even where no model input reads them
    for bad in (-7e10, 1.7e12):  # before the year 1; milliseconds
        with pytest.raises(SessrecError, match=r"timestamps must be epoch seconds \(not milliseconds\) between the years 2 "
                                               "and 5000"):
            rec.catalog.encode(one["items"], [rec.item_key], timestamps=[bad] * len(one["items"]))
    before_1970 = rec.recommend([{**one, "timestamps": [t - 60 * 365 * 86400 for t in one["timestamps"]]}], k=5)
    assert len(before_1970.ids[0]) == 5 and all(np.isfinite(before_1970.scores[0]))  # data of the 1960s is served
    internal = rec.recommend([{n: written[n][0][: len(rows[0]["item_id"])].tolist() for n in rec.input_names}], k=5,
                             internal_ids=True)
    assert internal.ids == offline_ids[:1].tolist()
    # a session longer than the model reads: its last max_len items; exclude_seen excludes all of them
    items = [i for s in sessions for i in s["items"]]
    times = [t for s in sessions for t in s["timestamps"]]
    assert len(items) > rec.max_len
    long, last = ({"items": items[-n:], "timestamps": times[-n:]} for n in (len(items), rec.max_len))
    assert rec.recommend([long], k=5).ids == rec.recommend([last], k=5).ids
    assert not set(rec.recommend([long], k=20, exclude_seen=True).ids[0]) & set(items)
    # without timestamps the time features use the clock: the scores of a session change with the hour, ids stay original
    now = rec.recommend([sessions[0]["items"]], k=5)
    assert now.unknown == [[]] and set(now.ids[0]) <= set(rec.catalog.item.raw[1:])


def test_numpy_values_and_generators_are_taken_as_lists_are(catalog_data, catalog_run):
    """numpy times (np.int64, float32) and feature values were refused as "not numbers", a generator of times was a
    TypeError from len() (QA helper-66)."""
    rec = Recommender.load(catalog_run / "checkpoint-last")
    rows, _ = written_sessions(catalog_data, rec, 2)
    items, times = rec.catalog.decode(rows[0]["item_id"]), [int(x) for x in rows[0]["timestamp"]]
    prices = [0.5 + i for i in range(len(items))]
    want = rec.recommend([{"items": items, "timestamps": times, "features": {"price_norm": prices}}], k=5)
    for given_times, given_prices in [(np.array(times), np.array(prices, dtype=np.float32)),
                                      (np.array(times, dtype=np.float32), [np.float32(p) for p in prices]),
                                      ((t for t in times), (p for p in prices)), (tuple(times), tuple(prices))]:
        got = rec.recommend([{"items": items, "timestamps": given_times, "features": {"price_norm": given_prices}}], k=5)
        assert got.ids == want.ids, (given_times, given_prices)
    for bad, message in [({"timestamps": 5}, "session 0: timestamps must be a list of values"),
                         ({"timestamps": [True] * len(items)}, "timestamps must be numbers"),
                         ({"features": [1.0]}, "session 0: features must map feature names to lists of values"),
                         ({"features": {"price_norm": 0.5}}, "session 0: features.price_norm must be a list of values")]:
        with pytest.raises(SessrecError, match=message):
            rec.recommend([{"items": items, **bad}], k=5)


@pytest.mark.parametrize("name", ["results.json", "config.yaml", "history.jsonl", "eval_train_results.csv"])
def test_an_output_never_replaces_a_run_s_own_file(catalog_data, catalog_run, tmp_path, capsys, name):
    """``--output RUN/results.json --overwrite`` replaced the run's results (the guard covered checkpoint and data
    folders only); the next report met a parquet file (QA helper-67)."""
    before = (catalog_run / name).read_bytes()
    rows, _ = written_sessions(catalog_data, Recommender.load(catalog_run), 2)
    sessions = tmp_path / "in.parquet"
    pq.write_table(pa.table({"items": [Recommender.load(catalog_run).catalog.decode(r["item_id"]) for r in rows]}),
                   sessions)
    assert main(["recommend", "--model-dir", str(catalog_run), "--input", str(sessions), "--output",
                 str(catalog_run / name), "--overwrite"]) == 2
    assert capsys.readouterr().err == (f"sessrec: error: --output {catalog_run / name} is a file of the run in "
                                       f"{catalog_run}: writing it would replace the run's own; give another name\n")
    assert (catalog_run / name).read_bytes() == before
    assert main(["recommend", "--model-dir", str(catalog_run), "--input", str(sessions), "--output",
                 str(catalog_run / "recs.parquet")]) == 0  # beside them: fine
    (catalog_run / "recs.parquet").unlink()


def test_load_refuses_a_device_or_path_it_cannot_take(catalog_run):
    """A deep torch RuntimeError (``device="gpu"``) and a pathlib TypeError (a number for the path) (QA helper-66)."""
    with pytest.raises(SessrecError, match=r"device must be auto, cpu, cuda or cuda:N \(got 'gpu'\)"):
        Recommender.load(catalog_run, device="gpu")
    with pytest.raises(SessrecError, match=r"path must be a run or checkpoint folder \(got 5\)"):
        Recommender.load(5)


def test_recommend_command_with_original_ids(catalog_data, catalog_run, tmp_path, capsys, caplog):
    ckpt = catalog_run / "checkpoint-last"
    rec = Recommender.load(ckpt)
    rows, _ = written_sessions(catalog_data, rec, 2)
    items = rec.catalog.decode(rows[0]["item_id"])
    want = rec.recommend([{"items": items, "timestamps": rows[0]["timestamp"]}], k=3, exclude_seen=True)
    assert main(["recommend", "--model-dir", str(ckpt), "--items", ",".join(map(str, [*items, 42, "042"])),
                 "--timestamps", ",".join(map(str, [*rows[0]["timestamp"], 0, 0])), "-k", "3", "--exclude-seen"]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert [int(line.split()[1]) for line in lines[1:4]] == want.ids[0] and len(lines) == 4
    # the ids of a numeric catalog are named as numbers, as the Python API names them ('042' is text: no number's)
    assert printed.err.splitlines()[-1] == "skipped 2 item(s) unknown to the model: 42, '042'"
    assert rec.recommend([[*items, 42, "042"]], k=3).unknown == [[42, "042"]]
    assert main(["recommend", "--model-dir", str(ckpt), "--items", "42", "--strict"]) == 2
    assert "1 unknown item(s): 42" in capsys.readouterr().err
    # an id as a float column writes it: the error says how the catalog writes it (QA helper-61)
    assert main(["recommend", "--model-dir", str(ckpt), "--items", f"{items[0]}.0"]) == 2
    assert capsys.readouterr().err == (f"sessrec: error: session 0: the session has no item known to the model (unknown: "
                                       f"'{items[0]}.0') ('{items[0]}.0' is not how the catalog writes item {items[0]}: "
                                       f"its ids are integers, matched as written; give {items[0]})\n")
    assert main(["recommend", "--model-dir", str(ckpt), "--items", f"{items[1]},0{items[0]}"]) == 0
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"('0{items[0]}' is not how the catalog writes item "
                                                              f"{items[0]}: its ids are integers, matched as written; "
                                                              f"give {items[0]})")
    # --json: the answer as the server gives it, ids as they are (QA helper-53: a script could only parse the table)
    assert main(["recommend", "--model-dir", str(ckpt), "--items", ",".join(map(str, [*items, 42, "042"])),
                 "--timestamps", ",".join(map(str, [*rows[0]["timestamp"], 0, 0])), "-k", "3", "--exclude-seen",
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {"items": want.ids[0], "scores": pytest.approx(want.scores[0], abs=1e-6), "unknown": [42, "042"]}
    assert main(["recommend", "--model-dir", str(ckpt), "--input", "x.parquet", "--output", "y.parquet", "--json"]) == 2
    assert "--json prints the answer for --items or --items-json" in capsys.readouterr().err
    # an empty id between commas is an id (unknown), not dropped: --strict stops at it (QA helper-53)
    assert main(["recommend", "--model-dir", str(ckpt), "--items", f"{items[0]},,{items[1]}", "--strict"]) == 2
    assert "1 unknown item(s): ''" in capsys.readouterr().err
    # a run folder means its newest checkpoint, as for sessrec serve
    assert main(["recommend", "--model-dir", str(catalog_run), "--items", ",".join(map(str, items)), "-k", "3", "--json"]) == 0
    assert main(["recommend", "--model-dir", str(ckpt), "--items", ",".join(map(str, items)), "-k", "3", "--json"]) == 0
    by_run, by_checkpoint = capsys.readouterr().out.strip().split("\n")
    assert json.loads(by_run) == json.loads(by_checkpoint)
    sessions = pa.table({"session_id": [7, 8], "items": [items, [*items[:2], 42]],
                         "timestamps": [rows[0]["timestamp"], [*rows[0]["timestamp"][:2], 0.0]]})
    pq.write_table(sessions, tmp_path / "in.parquet")
    assert main(["recommend", "--model-dir", str(ckpt), "--input", str(tmp_path / "in.parquet"), "--output",
                 str(tmp_path / "out.parquet"), "-k", "3", "--exclude-seen"]) == 0
    out = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert out["session_id"] == [7, 8] and out["item_ids"][0] == want.ids[0] and out["unknown"] == [0, 1]
    n_items = len(rec.catalog.item.raw) - 1  # k = the whole catalog: each row is what the session leaves
    assert main(["recommend", "--model-dir", str(ckpt), "--input", str(tmp_path / "in.parquet"), "--output",
                 str(tmp_path / "all.parquet"), "-k", str(n_items), "--exclude-seen"]) == 0
    out = pq.read_table(tmp_path / "all.parquet").to_pydict()
    assert [len(r) for r in out["item_ids"]] == [n_items - len(set(items)), n_items - len(set(items[:2]))]
    assert not set(out["item_ids"][0]) & set(items) and float("-inf") not in sum(out["scores"], [])
    # a session with no known item (or none at all) does not stop the file: its row is empty; --strict refuses it
    t = rows[0]["timestamp"]
    pq.write_table(pa.table({"session_id": [1, 2, 3], "items": [[42, 43], items, []], "timestamps": [t[:2], t, []]}),
                   tmp_path / "some_unknown.parquet")
    args = ["recommend", "--model-dir", str(ckpt), "--input", str(tmp_path / "some_unknown.parquet"), "--output",
            str(tmp_path / "out2.parquet"), "-k", "3", "--exclude-seen"]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    assert "2 of 3 sessions have no item known to the model: their rows are empty" in caplog.text
    out = pq.read_table(tmp_path / "out2.parquet").to_pydict()
    assert out["item_ids"] == [[], want.ids[0], []] and out["scores"][0] == [] and out["unknown"] == [2, 0, 0]
    assert main([*args, "--strict", "--overwrite"]) == 2
    assert "some_unknown.parquet, row 0: 2 unknown item(s): 42, 43" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(ckpt), "--input", str(catalog_data / "0003" / "valid.parquet"),
                 "--output", str(tmp_path / "x.parquet")]) == 2
    assert "no 'items' column" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(ckpt), "--input", str(catalog_data / "0003" / "valid.parquet"),
                 "--output", str(tmp_path / "x.parquet"), "--internal-ids"]) == 0


def test_recommend_output_never_replaces_the_input_data_or_a_checkpoint(catalog_data, catalog_run, tmp_path, capsys):
    """--output: a new file, or an existing one with --overwrite; never the input, a checkpoint's file or a prepared
    data folder's (not even with --overwrite): one line, exit 2, nothing changed; checked before the model loads."""
    ckpt = catalog_run / "checkpoint-last"
    rec = Recommender.load(ckpt)
    rows, _ = written_sessions(catalog_data, rec, 2)
    sessions = tmp_path / "in.parquet"
    pq.write_table(pa.table({"session_id": [1, 2], "items": [rec.catalog.decode(r["item_id"]) for r in rows]}), sessions)
    window = catalog_data / "0003" / "valid.parquet"
    kept = {p: p.read_bytes() for p in (sessions, window, ckpt / "model.safetensors")}
    base = ["recommend", "--model-dir", str(ckpt), "--input", str(sessions), "-k", "3"]
    for output, words in [(sessions, f"--output {sessions} is the --input file"),
                          (window, f"--output {window} is inside the data window folder {window.parent}: writing there would"),
                          (catalog_data / "recs.parquet", f"is inside the prepared data folder {catalog_data}:"),
                          (ckpt / "model.safetensors", f"is inside the checkpoint folder {ckpt}:"),
                          (tmp_path, f"--output {tmp_path} is a folder")]:
        assert main([*base, "--output", str(output), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert all(p.read_bytes() == b for p, b in kept.items()) and not (catalog_data / "recs.parquet").exists()
    out = tmp_path / "recs.parquet"
    assert main([*base, "--output", str(out)]) == 0
    first = out.read_bytes()
    out.write_bytes(b"mine")
    assert main([*base, "--output", str(out)]) == 2
    assert f"--output {out} exists: pass --overwrite to replace it" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert main([*base, "--output", str(out), "--overwrite"]) == 0 and out.read_bytes() == first
    with pytest.raises(SessrecError, match="exists: pass --overwrite"):
        rec.recommend_file(sessions, out, k=3)
    assert rec.recommend_file(sessions, out, k=3, overwrite=True) == 2
    assert main(["recommend", "--model-dir", str(ckpt), "--items", "1000084", "--output", str(tmp_path / "x.parquet")]) == 2
    assert "--output goes with --input" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(ckpt), "--items", "1000084", "--overwrite"]) == 2
    assert "--overwrite goes with --input and --output" in capsys.readouterr().err
    assert main(["serve", "--model-dir", str(ckpt), "--no-watch", "--watch-interval", "5"]) == 2
    assert "--watch-interval goes with watching the run folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def text_id_run(catalog_data, tmp_path_factory):
    """A model of data whose item ids are text with spaces, commas and quotes (``Blue Shirt 1000084``,
    ``say "1000091", ok``): the catalog data's event log with its ids rewritten."""
    root = tmp_path_factory.mktemp("text-ids")
    events = pq.read_table(catalog_data.parent / "events.parquet")
    items = events.column("item").to_pylist()
    text = [f"Blue Shirt {i}" if i % 2 == 0 else f'say "{i}", ok' for i in items]
    pq.write_table(events.set_column(events.column_names.index("item"), "item", pa.array(text)), root / "events.parquet")
    assert main(["prepare", "events", "--input", str(root / "events.parquet"), "--session-col", "session", "--item-col",
                 "item", "--time-col", "time", "--output", str(root / "data"), "--quiet"]) == 0
    assert main(["run", "--data-path", str(root / "data"), "--output-dir", str(root / "run"), "--model", "gpt2", "--task",
                 "clm", "--d-model", "16", "--n-layer", "1", "--n-head", "1", "--max-steps", "2",
                 "--final-time-window-index", "2", "--quiet", "--no-compare-with-pop"]) == 0
    return root / "run" / "checkpoint-last"


def test_recommend_items_keep_spaces_inside_ids_and_items_json_takes_any_id(text_id_run, capsys):
    """--items drops only the spaces around each id (it deleted every space: 'Blue Shirt 1' became 'BlueShirt1');
    --items-json takes ids exactly, commas and quotes included."""
    rec = Recommender.load(text_id_run)
    shirts = [i for i in rec.catalog.item.raw[1:] if i.startswith("Blue Shirt")][:2]
    says = [i for i in rec.catalog.item.raw[1:] if i.startswith("say")][:1]
    assert len(shirts) == 2 and says and "," in says[0]

    def printed(args):
        assert main(["recommend", "--model-dir", str(text_id_run), "-k", "3", "--timestamps", "1569888000,1569888060",
                     *args]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert not any(line.startswith("skipped") for line in lines), lines
        return [line.split(maxsplit=1)[1].rsplit(maxsplit=1)[0].strip() for line in lines[1:]]

    def want(items):  # as the table shows them: an id holding quotes is quoted (_shown_id)
        from sessrec.cli import _shown_id

        return [_shown_id(i) for i in rec.recommend([{"items": items, "timestamps": [1569888000, 1569888060]}], k=3).ids[0]]

    assert printed(["--items", f" {shirts[0]} ,{shirts[1]}  "]) == want(shirts)
    assert printed(["--items-json", json.dumps([says[0], shirts[0]])]) == want([says[0], shirts[0]])
    assert main(["recommend", "--model-dir", str(text_id_run), "--items", shirts[0].replace(" ", ""), "--strict"]) == 2
    assert "1 unknown item(s): 'BlueShirt" in capsys.readouterr().err
    for bad in ('["a",', '{"items": ["a"]}', '["a", 1.5]', '[["a"]]', "[true]", '["a", NaN]', '["a", Infinity]'):
        assert main(["recommend", "--model-dir", str(text_id_run), "--items-json", bad]) == 2
        assert "--items-json must be a JSON list of item ids" in capsys.readouterr().err
    assert main(["recommend", "--model-dir", str(text_id_run), "--items", "a", "--items-json", '["a"]']) == 2
    assert "give either --items" in capsys.readouterr().err


def test_run_evaluates_every_position_for_model_and_baseline(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "all", model_type="gru", task="clm", final_time_window_index=2,
                      eval_on_last_item_seq_only=False)
    window = run_experiment(cfg, printer=lambda *_: None).windows[0]
    valid = load_sessions(window_file(tiny_data, 2, "valid"), load_schema(tiny_data / "schema.pbtxt"), 20)
    positions = int(valid.min_length(2).lengths.sum() - len(valid.min_length(2)))
    assert positions > len(valid.min_length(2))
    assert window["n_eval_sessions"] == positions and window["pop"]["eval_n_sessions"] == positions


def test_a_checkpoint_of_an_older_model_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """A checkpoint saved by a version whose HSTU had no input positions: one line naming the missing weights."""
    import sessrec.bodies.hstu as hstu

    older = hstu.model_options
    monkeypatch.setattr(hstu, "model_options", lambda cfg, defaults: {**older(cfg, defaults), "input_positions": False})
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, _ = trained_checkpoint(tmp_path / "ckpt", SCHEMA, data, model_type="hstu", task="clm")
    monkeypatch.setattr(hstu, "model_options", older)
    with pytest.raises(SessrecError, match=r"do not fit the model .*missing body\.input_pos\.weight"):
        Recommender.load(folder)
    assert main(["recommend", "--model-dir", str(folder), "--items", "3,4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sessrec: error: checkpoint {folder}") and len(err.splitlines()) == 1


def test_interaction_times_keep_their_seconds_in_the_python_api(tmp_path):
    """Epoch seconds given as floats reach HSTU's time bias whole: float32 would round them to 128 s."""
    from sessrec.schema import LIST, TIME

    schema = Schema([SCHEMA.features[0], FeatureSpec("ts", "float", (LIST, TIME))])
    g = torch.Generator().manual_seed(0)
    t = 1.7e9 + torch.cumsum(torch.randint(1, 600, (64, 8), generator=g), 1).double()
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g), "ts": t}, "item")
    folder, learner = trained_checkpoint(tmp_path, schema, data, model_type="hstu", task="clm")
    with torch.no_grad():
        learner.model.body.layers[0].time_bias.normal_(0.0, 1.0)  # a strong time bias: the seconds matter
    rec = Recommender(learner, schema, 8, 64)
    session = {"item": [3, 4, 5], "ts": [1.7e9 + 0.5, 1.7e9 + 3.5, 1.7e9 + 40.5]}
    batch = sessions_to_batch([session], "item", 8, float64=["ts"])
    assert batch["ts"].dtype == torch.float64 and batch["ts"][0, 2].item() == 1.7e9 + 40.5
    want = recommend(learner, batch, 5)
    got = rec.recommend([session], k=5)
    assert got.ids == want[0].tolist() and torch.allclose(torch.tensor(got.scores), want[1])
    rounded = recommend(learner, {n: v.float() for n, v in batch.items() if n == "ts"} | {"item": batch["item"]}, 5)
    assert not torch.allclose(rounded[1], want[1])  # what float32 times gave


def test_a_session_that_is_not_a_list_is_one_line_with_a_catalog_too(catalog_run, tmp_path, capsys):
    rec = Recommender.load(catalog_run / "checkpoint-last")
    for session, shown in ((5, "5"), ({"items": "1000007"}, "'1000007'")):  # text was read one character at a time
        with pytest.raises(SessrecError, match=rf"session 0: items must be a list of values \(got {shown}\)"):
            rec.recommend([session])
    scalar = tmp_path / "scalar.parquet"
    pq.write_table(pa.table({"items": [1000007, 1000008]}), scalar)
    assert main(["recommend", "--model-dir", str(catalog_run / "checkpoint-last"), "--input", str(scalar),
                 "--output", str(tmp_path / "out.parquet")]) == 2
    assert f"{scalar}, row 0: items must be a list of values (got 1000007)" in capsys.readouterr().err


def test_an_input_column_named_as_an_answer_column_is_refused(catalog_data, catalog_run, tmp_path):
    """An input column named item_ids, scores or unknown (an earlier output given again) would make an output with
    two columns of that name, which no parquet reader opens: refused, nothing written."""
    rec = Recommender.load(catalog_run / "checkpoint-last")
    rows, _ = written_sessions(catalog_data, rec, 1)
    items = rec.catalog.decode(rows[0]["item_id"])
    pq.write_table(pa.table({"session_id": [1], "items": [items]}), tmp_path / "in.parquet")
    rec.recommend_file(tmp_path / "in.parquet", tmp_path / "out.parquet", k=3)
    with pytest.raises(SessrecError, match=r"out.parquet: column 'item_ids' has the name of an answer column the output "
                                           r"adds \(item_ids, scores, unknown\); rename or drop it"):
        rec.recommend_file(tmp_path / "out.parquet", tmp_path / "again.parquet", k=3)
    # an earlier output of model ids: its item_ids and scores lists were dropped and replaced without a word
    internal = pq.read_table(tmp_path / "out.parquet").drop(["unknown"])
    pq.write_table(internal.append_column(rec.item_key, pa.array([rows[0]["item_id"]])), tmp_path / "internal.parquet")
    with pytest.raises(SessrecError, match="column 'item_ids' has the name"):
        rec.recommend_file(tmp_path / "internal.parquet", tmp_path / "again.parquet", k=3, internal_ids=True)
    pq.write_table(pa.table({n: [5, 7] for n in rec.input_names}), tmp_path / "flat.parquet")  # a pyarrow traceback before
    with pytest.raises(SessrecError, match=f"flat.parquet: column '{rec.item_key}' must be a list column"):
        rec.recommend_file(tmp_path / "flat.parquet", tmp_path / "again.parquet", k=3, internal_ids=True)
    pq.write_table(pa.table({"items": [items], "scores": [0.5]}), tmp_path / "scored.parquet")
    with pytest.raises(SessrecError, match="column 'scores' has the name"):
        rec.recommend_file(tmp_path / "scored.parquet", tmp_path / "again.parquet", k=3)
    assert not (tmp_path / "again.parquet").exists()


def test_flags_of_the_python_api_are_booleans(catalog_data, catalog_run, tmp_path):
    """numpy's bools (what a pandas row holds) are flags; text, numbers, None or lists are one-line errors ("no" and
    "false" would read as true, [True] as one flag for all sessions)."""
    rec = Recommender.load(catalog_run / "checkpoint-last")
    rows, _ = written_sessions(catalog_data, rec, 1)
    session = [{"items": rec.catalog.decode(rows[0]["item_id"]), "timestamps": rows[0]["timestamp"]}]
    assert rec.recommend(session, k=3, exclude_seen=np.True_).ids == rec.recommend(session, k=3, exclude_seen=True).ids
    assert rec.recommend(session, k=3, strict=np.False_).ids == rec.recommend(session, k=3).ids
    for name in ("exclude_seen", "strict", "internal_ids"):
        for value in ("no", "false", 0, 1, None, [True]):
            with pytest.raises(SessrecError, match=f"^{name} must be True or False"):
                rec.recommend(session, k=3, **{name: value})
    with pytest.raises(SessrecError, match="'items' is not a feature of this model .*; with internal_ids=True a session "
                                           "holds model values, no original ids"):
        rec.recommend([{"items": [15]}], k=2, internal_ids=True)
    pq.write_table(pa.table({"items": [session[0]["items"]]}), tmp_path / "in.parquet")
    with pytest.raises(SessrecError, match="^exclude_seen must be True or False"):
        rec.recommend_file(tmp_path / "in.parquet", tmp_path / "out.parquet", exclude_seen="no")
    assert not (tmp_path / "out.parquet").exists()


def test_a_float_id_beyond_2_53_is_an_error_not_an_unknown_rounded_id(catalog_run):
    """A float cannot hold every id beyond 2**53 (pandas makes one of an integer column with a missing value): it may
    stand for another id, so it is refused with the reason rather than listed as an unknown id nobody sent."""
    rec = Recommender.load(catalog_run / "checkpoint-last")
    assert rec.catalog.numeric_ids
    with pytest.raises(SessrecError, match=r"session 0: items: 9007199254740994.0 is a float beyond 2\*\*53, which cannot "
                                           "hold every integer id exactly"):
        rec.recommend([[1000084, float(2**53 + 2)]], k=3)


def test_a_nested_list_in_a_session_is_an_error_naming_it(catalog_run, text_id_run):
    """A session with a list where an id goes (sessions nested one level too deep) is refused, numeric or text ids."""
    for folder in (catalog_run / "checkpoint-last", text_id_run):
        rec = Recommender.load(folder)
        known = rec.catalog.item.raw[1]
        with pytest.raises(SessrecError, match=r"^session 0: items: \[.*\] is not an original value \(text or a number\)$"):
            rec.recommend([[known, [known]]], k=3)


def test_items_json_takes_whole_floats_as_the_python_api_and_the_server_do(catalog_run, capsys):
    """`--items-json '[1021, 1035.0]'` was refused while the API and the server take 1035.0 as 1035 (QA helper-42)."""
    ckpt = catalog_run / "checkpoint-last"

    def printed(args):
        assert main(["recommend", "--model-dir", str(ckpt), "-k", "3", *args]) == 0
        return capsys.readouterr().out

    assert printed(["--items-json", "[1000084, 1000511.0]"]) == printed(["--items", "1000084,1000511"])


def test_the_recommend_table_quotes_ids_it_could_not_show_plainly():
    """' 42', '42' and '42 ' printed as three rows of 42, and an id with a newline broke the table (QA helper-53)."""
    from sessrec.cli import _shown_id

    assert [_shown_id(i) for i in (42, "42", " 42", "42 ", "", "a\nb", "Blue Shirt M", "café")] == \
        ["42", "42", "' 42'", "'42 '", "''", "'a\\nb'", "Blue Shirt M", "café"]
    # an id holding quotes read like the table's own quoting (QA helper-70)
    assert [_shown_id(i) for i in ('"q"', "it's")] == ["'\"q\"'", '"it\'s"']


def test_the_recommend_table_aligns_wide_characters():
    """CJK ids and emoji take two terminal columns: padded by characters, the score column went out of line (QA
    helper-70)."""
    from sessrec.cli import _columns

    assert [_columns(s) for s in ("abc", "日本", "café", "cafe\u0301", "🛒x")] == [3, 4, 4, 4, 3]


def test_a_checkpoint_without_the_model_says_why(tiny_data, tmp_path, monkeypatch, capsys):
    """A GRU4Rec checkpoint of an earlier sessrec (whose GRU4Rec had no state_dict) holds no model: the message says so
    and what to do, not that GRU4Rec cannot be saved."""
    from sessrec.baselines.gru4rec import GRU4Rec

    params = {"layers": 8, "n_epochs": 1, "batch_size": 16}
    with monkeypatch.context() as m:
        m.delattr(GRU4Rec, "state_dict")
        run_experiment(tiny_config(tiny_data, tmp_path / "old", model_type="gru4rec", baseline_params=params,
                                   final_time_window_index=3), printer=lambda *_: None)
    assert main(["recommend", "--model-dir", str(tmp_path / "old"), "--items", "1,2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("holds no model of model_type 'gru4rec': it was saved by an earlier sessrec, which saved none "
                        "for it: run it again with this version"), err
    run_experiment(tiny_config(tiny_data, tmp_path / "new", model_type="gru4rec", baseline_params=params,
                               final_time_window_index=3), printer=lambda *_: None)
    assert main(["recommend", "--model-dir", str(tmp_path / "new"), "--items", "1,2", "-k", "3"]) == 0
