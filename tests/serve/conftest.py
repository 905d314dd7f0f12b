"""A real ``sessrec serve`` server on 127.0.0.1 in a thread of the test process (uvicorn, a free port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sessrec.serve.app import Options, Server, bind, create_app, uvicorn_server


@contextmanager
def running(model_dir: Path, **options) -> Iterator[tuple[httpx.Client, Server]]:
    """A server for ``model_dir`` listening on a free port, and an HTTP client for it."""
    opts = Options(model_dir=model_dir, port=0, **options)
    server = Server(opts)
    sock = bind("127.0.0.1", 0)
    uv = uvicorn_server(create_app(server), opts)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            yield client, server
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def catalog_server(catalog_run) -> Iterator[tuple[httpx.Client, Server]]:
    """The catalog run's newest checkpoint served (eager, not watching)."""
    with running(catalog_run, watch=False) as served:
        yield served
