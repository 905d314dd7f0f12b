"""The HTTP API on a real server: answers equal the offline model's, every bad request a 4xx JSON error."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import torch

from sessrec.errors import SessrecError
from sessrec.recommend import Recommender
from tests.conftest import written_sessions
from tests.serve.conftest import running


def test_served_answers_equal_the_offline_model(catalog_data, catalog_run, catalog_server):
    """Written sessions sent as original ids and times: the served items and scores are the offline
    model's on the written features (every input feature rebuilt: category, brand, price from the
    item table; item age, hour and weekday from the times)."""
    client, _ = catalog_server
    rec = Recommender.load(catalog_run / "checkpoint-last")
    rows, written = written_sessions(catalog_data, rec)
    ids, scores = rec.recommend_batch(written, k=10)
    for i, row in enumerate(rows):
        r = client.post("/recommend", json={"items": rec.catalog.decode(row["item_id"]), "timestamps": row["timestamp"]})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["items"] == rec.catalog.decode(ids[i].tolist()) and body["unknown"] == [] and body["version"] == 1
        assert torch.allclose(torch.tensor(body["scores"]), scores[i], atol=1e-5)
    # k, exclude_seen, an unknown item and ids sent as text
    items = rec.catalog.decode(rows[0]["item_id"])
    want = rec.recommend([{"items": items, "timestamps": rows[0]["timestamp"]}], k=3, exclude_seen=True)
    body = client.post("/recommend", json={"items": ["404", *map(str, items)], "timestamps": [0, *rows[0]["timestamp"]],
                                           "k": 3, "exclude_seen": True}).json()
    assert body["items"] == want.ids[0] and body["unknown"] == ["404"]
    # a whole float is its integer (what JSON writers send for a float column), as in the Python API
    body = client.post("/recommend", json={"items": ["404", *map(float, items)], "timestamps": [0, *rows[0]["timestamp"]],
                                           "k": 3, "exclude_seen": True}).json()
    assert body["items"] == want.ids[0] and body["unknown"] == ["404"]


def test_health_and_metadata(catalog_server, catalog_data):
    client, server = catalog_server
    assert client.get("/health").json() == {"status": "ok", "version": 1, "window": 2}
    meta = client.get("/metadata").json()
    assert meta["window"] == 2 and meta["backend"] == "eager" and meta["model"]["model_type"] == "xlnet"
    assert meta["catalog"] == {"items": server.model.rec.catalog.n_items, "original_ids": True}
    assert meta["catalog"]["items"] == json.loads((catalog_data / "stats.json").read_text())["items"]
    assert meta["inputs"]["hour_sin"].startswith("rebuilt from the interaction times")
    assert meta["limits"]["max_k"] == meta["catalog"]["items"]  # --max-k 1000 > the catalog
    doc = client.get("/openapi.json").json()
    assert {"/recommend", "/health", "/metadata"} <= set(doc["paths"])
    body = doc["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["items"] and "exclude_seen" in body["properties"]


BIG = 1 << 20
# (method, path, JSON body or raw bytes, extra headers) -> (status, words of the error)
BAD = [
    ("POST", "/recommend", b'{"items": [1000084', {}, 400, "invalid JSON"),
    ("POST", "/recommend", b"", {}, 400, "invalid JSON"),
    ("POST", "/recommend", b"\xff\xfe", {}, 400, "invalid JSON"),
    ("POST", "/recommend", [1000084], {}, 422, "body"),
    ("POST", "/recommend", {}, {}, 422, "items: Field required"),
    ("POST", "/recommend", {"items": []}, {}, 422, "the session is empty"),
    ("POST", "/recommend", {"items": None}, {}, 422, "items"),
    ("POST", "/recommend", {"items": [True]}, {}, 422, "items.0: true is not an item id (a whole number or text)"),
    ("POST", "/recommend", {"items": [True, None]}, {}, 422, "items.0: true is not an item id (a whole number or text) "
                                                             "(and 1 more)"),
    ("POST", "/recommend", {"items": [1.5]}, {}, 422, "items.0: 1.5 is not an item id (a whole number or text)"),
    ("POST", "/recommend", {"items": [1000084, 9007199254740993.0]}, {}, 422,
     "items.1: 9007199254740992.0 is a float beyond 2**53, which cannot hold every integer id exactly"),
    ("POST", "/recommend", b'{"items": [1000084, Infinity]}', {}, 422, "items.1: inf is not an item id"),
    ("POST", "/recommend", {"items": [1000084], "features": {"hour_sin": [0.5]}}, {}, 422,
     "features.hour_sin is rebuilt from the interaction times: send 'timestamps' instead"),
    ("POST", "/recommend", {"items": [[1000084]]}, {}, 422, "items.0"),
    ("POST", "/recommend", {"items": "1000084"}, {}, 422, "items"),
    ("POST", "/recommend", {"items": [1000084], "k": 0}, {}, 422, "k must be between 1 and"),
    ("POST", "/recommend", {"items": [1000084], "k": -3}, {}, 422, "k must be between 1 and"),
    ("POST", "/recommend", {"items": [1000084], "k": 10**12}, {}, 422, "k must be between 1 and"),
    ("POST", "/recommend", {"items": [1000084], "k": 10**30}, {}, 422, "k must be between 1 and"),
    ("POST", "/recommend", {"items": [1000084], "k": "5"}, {}, 422, "k:"),
    ("POST", "/recommend", {"items": [1000084], "k": 2.5}, {}, 422, "k:"),
    ("POST", "/recommend", {"items": [1000084], "exclude_seen": "yes"}, {}, 422, "exclude_seen"),
    ("POST", "/recommend", {"items": [1000084], "colour": "red"}, {}, 422, "colour: Extra inputs are not permitted"),
    ("POST", "/recommend", {"itemz": [1000084]}, {}, 422, "itemz: Extra inputs are not permitted (and 1 more)"),
    ("POST", "/recommend", {"items": ["nope", 12]}, {}, 422, "no item known to the model (unknown: 'nope', 12)"),
    ("POST", "/recommend", {"items": ["nope", 1000084], "strict": True}, {}, 422, "1 unknown item(s): 'nope'"),
    # an integer catalog matches the text of its ids exactly: not every text int() reads as the number
    ("POST", "/recommend", {"items": ["01000084", "+1000084", "1_000_084", "1000084 ", "\u0661\u0660"]}, {}, 422,
     "no item known to the model (unknown: '01000084', '+1000084', '1_000_084', '1000084 ', '\u0661\u0660')"),
    ("POST", "/recommend", {"items": ["1000084", "01000084"], "strict": True}, {}, 422, "1 unknown item(s): '01000084'"),
    ("POST", "/recommend", {"items": [1000084] * 1001}, {}, 422, "over the limit of 1,000"),
    ("POST", "/recommend", {"items": [1000084, 1000511], "timestamps": [1.0]}, {}, 422, "timestamps has 1 values for 2"),
    ("POST", "/recommend", {"items": [1000084], "timestamps": [-7e10]}, {}, 422, "epoch seconds (not milliseconds)"),
    ("POST", "/recommend", {"items": [1000084], "timestamps": [1.7e12]}, {}, 422, "epoch seconds (not milliseconds)"),
    ("POST", "/recommend", {"items": [1000084], "timestamps": ["noon"]}, {}, 422,
     'timestamps.0: "noon" is not a number (epoch seconds)'),
    ("POST", "/recommend", b'{"items": [1000084], "timestamps": [NaN]}', {}, 422, "epoch seconds"),
    ("POST", "/recommend", {"items": [1000084], "features": {"colour": ["red"]}}, {}, 422, "not a side feature"),
    ("POST", "/recommend", {"items": [1000084], "features": {"category": ["c1", "c2"]}}, {}, 422, "has 2 values for 1"),
    ("POST", "/recommend", {"items": [1000084], "features": {"price_norm": ["cheap"]}}, {}, 422, "finite numbers"),
    ("POST", "/recommend", {"items": [1000084], "features": {"price_norm": [1e39]}}, {}, 422, "finite numbers (within float32"),
    ("POST", "/recommend", {"items": [1000084], "features": {"category": [{"a": 1}]}}, {}, 422,
     'features.category.0: {"a": 1} is not a feature value (text, a number or null)'),
    ("POST", "/recommend", {"items": [1000084], "features": {"price_norm": [None]}}, {}, 422,
     "features.price_norm must hold finite numbers"),
    ("POST", "/recommend", b'{"items": [' + b"1," * BIG + b"1]}", {}, 413, "over the limit of 1,048,576"),
    ("POST", "/recommend", b'{"items": [1000084]}', {"content-length": str(BIG + 1)}, 413, "over the limit"),
    ("GET", "/recommend", None, {}, 405, "Method Not Allowed"),
    ("POST", "/health", {}, {}, 405, "Method Not Allowed"),
    ("GET", "/nothing-here", None, {}, 404, "Not Found"),
]


def _send(client, method, path, body, headers):
    if isinstance(body, bytes):
        return client.request(method, path, content=body, headers={"content-type": "application/json", **headers})
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("case", BAD, ids=[f"{c[4]}-{i}" for i, c in enumerate(BAD)])
def test_a_bad_request_gets_a_4xx_json_error_and_the_server_goes_on(catalog_server, case):
    client, _ = catalog_server
    method, path, body, headers, status, words = case
    if "content-length" in headers:  # a body shorter than announced: sent by hand, the client would refuse
        r = _raw_request(client, method, path, body, headers)
    else:
        r = _send(client, method, path, body, headers)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and "\n" not in r.json()["error"]
    assert client.post("/recommend", json={"items": [1000084]}).status_code == 200


def _raw_request(client, method, path, body, headers):
    import socket

    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as s:
        head = f"{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "connection: close\r\n\r\n"
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return httpx.Response(int(status_line.split()[1]), content=rest.partition(b"\r\n\r\n")[2])


def test_a_chunked_body_over_the_limit_is_refused(catalog_server):
    client, _ = catalog_server

    def chunks():
        yield b'{"items": ['
        for _ in range(200):
            yield b"1000084," * 1000
        yield b"1]}"

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_a_model_without_catalog_takes_model_ids(straight_run):
    """The tiny sample has no catalog: items are model ids; anything else (padding 0, an id outside the model, text)
    is a 422 with the Python API's words."""
    rec = Recommender.load(straight_run / "checkpoint-last")
    n = rec.schema.n_items
    with running(straight_run, watch=False) as (client, _):
        assert client.get("/metadata").json()["catalog"]["original_ids"] is False
        body = client.post("/recommend", json={"items": [12, 5, 7], "k": 5}).json()
        assert body["items"] == rec.recommend([[12, 5, 7]], k=5).ids[0] and body["unknown"] == []
        for items, words in [([12, n], f"item id {n} is outside this model's range 1..{n - 1}"),
                             ([0, 12], "item id 0 is not a model id (whole numbers from 1; 0 is padding)"),
                             ([-1], "item id -1 is not a model id (whole numbers from 1; 0 is padding)"),
                             (["12"], "item id '12' is not a model id (whole numbers from 1; 0 is padding)")]:
            r = client.post("/recommend", json={"items": items})
            assert r.status_code == 422 and r.json()["error"] == words, (items, r.text)
            with pytest.raises(SessrecError) as e:
                rec.recommend([items])
            assert str(e.value) == f"session 0: {words}"
        r = client.post("/recommend", json={"items": [12], "timestamps": [1.0]})
        assert r.status_code == 422 and "need a catalog" in r.json()["error"]


def test_a_null_categorical_value_is_the_unknown_id_as_in_the_python_api(catalog_run, catalog_server):
    """JSON null for a categorical feature (a missing brand, as the logs have it) is the feature's unknown id, as
    ``sessrec prepare`` encodes an empty value and as the Python API takes None; it was a 422 listing three types."""
    client, _ = catalog_server
    rec = Recommender.load(catalog_run / "checkpoint-last")
    known = rec.catalog.maps["category"].raw[2]
    session = {"items": [1000084, 1000511], "features": {"category": [None, known]}}
    assert rec.encode(session).features["category"].tolist() == [1, 2]  # 1: the unknown id
    body = client.post("/recommend", json={**session, "k": 5}).json()
    want = rec.recommend([session], k=5)
    assert body["items"] == want.ids[0] and body["scores"] == pytest.approx(want.scores[0], abs=1e-5)


@pytest.mark.parametrize("option, value, line", [
    ("watch_interval", float("inf"), "--watch-interval must be a number of seconds in (0, 86400] (got inf)"),
    ("watch_interval", float("nan"), "--watch-interval must be a number of seconds in (0, 86400] (got nan)"),
    ("watch_interval", 0.0, "--watch-interval must be a number of seconds in (0, 86400] (got 0.0)"),
    ("batch_wait_ms", float("nan"), "--batch-wait-ms must be a number of milliseconds in 0..60000 (got nan)"),
    ("batch_wait_ms", -1.0, "--batch-wait-ms must be a number of milliseconds in 0..60000 (got -1.0)"),
])
def test_serving_times_that_are_no_waits_are_refused(catalog_run, option, value, line):
    """--watch-interval inf killed the watcher thread (OverflowError), NaN made it poll without pause; a NaN batch wait
    was served as is (QA helper-67)."""
    from sessrec.serve.app import Options

    with pytest.raises(SessrecError, match=f"^{re.escape(line)}$"):
        Options(model_dir=catalog_run, **{option: value}).validate()


def test_serving_options_without_effect_are_warned(catalog_run, caplog):
    """--batch-wait-ms with --max-batch 1 (nothing ever waits) and --watch-interval for a checkpoint folder (nothing to
    watch) were accepted without a word (QA helper-43)."""
    import logging

    from sessrec.serve.app import Options, Server

    with caplog.at_level(logging.WARNING):
        Options(model_dir=catalog_run, max_batch=1, batch_wait_ms=50.0).validate()
        Server(Options(model_dir=catalog_run / "checkpoint-last", watch_interval=5.0))
    assert "--batch-wait-ms has no effect with --max-batch 1" in caplog.text
    assert "--watch-interval has no effect" in caplog.text and "is a checkpoint, not a run folder" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Options(model_dir=catalog_run, max_batch=8, batch_wait_ms=50.0).validate()
        Server(Options(model_dir=catalog_run, watch_interval=5.0))
    assert "no effect" not in caplog.text


def _read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_silent_and_stalled_clients_are_timed_out_and_free_their_places(catalog_run, caplog):
    """A connection that never sent a request, or stalled in its headers or body, was never timed out: it held a place
    of --max-concurrency for good, and as many silent connections as the limit made every request a 503 (QA
    helper-51). Now each gets --read-timeout: a silent one is closed, a stalled one answered 408."""
    import socket
    import time

    with running(catalog_run, watch=False, read_timeout=0.5, max_concurrency=3) as (client, _):
        host, port = client.base_url.host, client.base_url.port
        assert client.get("/metadata").json()["limits"]["read_timeout"] == 0.5
        socks = [socket.create_connection((host, port), timeout=10) for _ in range(3)]
        try:
            time.sleep(0.2)  # the three silent connections hold the places: the request gets uvicorn's 503
            with httpx.Client(base_url=client.base_url, timeout=10) as fresh:
                assert fresh.post("/recommend", json={"items": [1000084]}).status_code == 503
            began = time.monotonic()
            assert all(_read_all(s) == b"" for s in socks)  # closed, without an answer
            assert time.monotonic() - began < 5
        finally:
            for s in socks:
                s.close()
        with httpx.Client(base_url=client.base_url, timeout=10) as fresh:
            assert fresh.post("/recommend", json={"items": [1000084]}).status_code == 200

        head = b"POST /recommend HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"
        for stalled in (head[:40], head + b'{"items": [10'):  # in the headers, in the body
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(stalled)
                data = _read_all(s)
            assert data.startswith(b"HTTP/1.1 408 ") and b"connection: close" in data
            assert data.endswith(b"Request not received within --read-timeout (0.5 s).")

        with socket.create_connection((host, port), timeout=10) as s:  # a body refused before it is all sent
            s.sendall(head.replace(b"40", b"4000000") + b'{"items": [10')
            assert s.recv(65536).startswith(b"HTTP/1.1 413 ")
            s.sendall(b"0" * 1000)  # and the rest of it stalls: the connection times out too
            began = time.monotonic()
            assert _read_all(s).startswith(b"HTTP/1.1 408 ") and time.monotonic() - began < 5
        with socket.create_connection((host, port), timeout=10) as s:  # a client that leaves in the body
            s.sendall(head + b'{"items": [10')
            time.sleep(0.1)
        assert client.post("/recommend", json={"items": [1000084]}).status_code == 200
    assert "internal error" not in caplog.text and "Traceback" not in caplog.text  # it logged a ClientDisconnect


def test_a_keep_alive_client_slower_than_the_read_timeout_still_gets_answers(catalog_run):
    """The timeout counts from a connection's opening or previous answer to the end of the request's headers: a client
    that takes its time between requests on one connection is closed and reconnects (httpx does), never refused."""
    import time

    with running(catalog_run, watch=False, read_timeout=0.3) as (client, _):
        for _ in range(3):
            assert client.post("/recommend", json={"items": [1000084]}).status_code == 200
            time.sleep(0.5)
