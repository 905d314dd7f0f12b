"""The HTTP API of ``sessrec serve`` (FastAPI on uvicorn) and the server's start.

* ``POST /recommend`` ``{"items": [...], "k": 10, "exclude_seen": true, "timestamps": [...],
  "features": {...}, "strict": false}`` → ``{"items": [...], "scores": [...], "unknown": [...],
  "version": 1}``: the top-k next items in original ids (model ids for a model without catalog),
  and the session's items the model does not know (skipped; a 422 with ``strict``)
* ``GET /health`` → ``{"status": "ok", ...}``; ``GET /metadata``: the model, its window, the
  catalog size, where each input feature comes from, the batching and the limits

A bad request gets a 4xx answer ``{"error": "one line"}`` (400 invalid JSON, 413 body too large,
422 anything else about the request, 404/405 wrong route or method); never a 500 for what a client
sends. A request not sent within ``--read-timeout`` gets uvicorn-style plain-text 408 (:func:`timed_protocol`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from sessrec.checkpoint import model_checkpoint
from sessrec.data.catalog import float_beyond_ids, whole_float
from sessrec.errors import SessrecError
from sessrec.serve.batcher import MicroBatcher
from sessrec.serve.models import ModelWatcher, ServedModel, load_served, settle_memory

log = logging.getLogger(__name__)


@dataclass
class Options:
    """The settings of a server (the flags of ``sessrec serve``)."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "eager"
    device: str = "cpu"
    num_threads: int = 1  # torch (and ONNX Runtime) threads of the scoring thread; 0 = torch's default
    max_batch: int = 64  # sessions per forward pass; 1 = no micro-batching
    batch_wait_ms: float = 2.0  # longest wait for requests still arriving before a batch is scored
    watch: bool = True  # with a run folder: serve each new checkpoint-last
    watch_interval: float = 10.0
    strict: bool = False  # unknown items are an error (a request's "strict" overrides it)
    max_k: int = 1000
    max_items: int = 1000  # items in one session
    max_body_bytes: int = 1 << 20
    max_concurrency: int = 1000  # open connections; more get 503
    read_timeout: float = 10.0  # seconds a connection has to send a whole request, from its opening or last answer
    access_log: bool = False

    def validate(self) -> Options:
        for name in ("max_batch", "max_k", "max_items", "max_body_bytes", "max_concurrency"):
            if getattr(self, name) < 1:
                raise SessrecError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.num_threads < 0:
            raise SessrecError(f"--num-threads must be >= 0 (0: torch's default; got {self.num_threads})")
        if not 0 <= self.batch_wait_ms <= 60_000:  # NaN and inf too: a wait nobody means
            raise SessrecError(f"--batch-wait-ms must be a number of milliseconds in 0..60000 (got {self.batch_wait_ms})")
        if not 0 < self.watch_interval <= 86_400:  # inf overflowed the watcher's sleep, NaN made it poll without pause
            raise SessrecError(f"--watch-interval must be a number of seconds in (0, 86400] (got {self.watch_interval})")
        if not 0 < self.read_timeout < math.inf:
            raise SessrecError(f"--read-timeout must be a positive number of seconds (got {self.read_timeout})")
        if not 0 <= self.port < 65536:
            raise SessrecError(f"--port must be 0..65535 (got {self.port})")
        if self.max_batch == 1 and self.batch_wait_ms != _default("batch_wait_ms"):
            log.warning("--batch-wait-ms has no effect with --max-batch 1 (every request is scored alone, at once)")
        return self


def _default(name: str) -> Any:
    return Options.__dataclass_fields__[name].default


Item = StrictInt | StrictStr
Number = StrictInt | StrictFloat


class RecommendRequest(BaseModel):
    """One session, oldest item first."""

    model_config = ConfigDict(extra="forbid")
    items: list[Item | StrictFloat]  # a whole float is its integer (JSON writers send 42.0 for a float column)
    k: StrictInt = 10
    exclude_seen: StrictBool = False
    timestamps: list[Number] | None = None  # epoch seconds, one per item (default: now)
    # per-item side features; null is a missing value (the unknown id of a categorical feature that has one, as
    # prepare encodes an empty value), as in the Python API
    features: dict[str, list[Item | StrictFloat | None]] | None = None
    strict: StrictBool | None = None  # default: the server's --strict


class Server:
    """The state behind the routes: the served model (replaced whole by a refresh), the batcher, the watcher."""

    def __init__(self, opts: Options):
        self.opts = opts.validate()
        folder, self.run_dir = model_checkpoint(Path(opts.model_dir))
        self.model: ServedModel = load_served(folder, opts.backend, 1, opts.device, opts.num_threads)
        settle_memory()
        self.batcher = MicroBatcher(opts.max_batch, opts.batch_wait_ms / 1000.0)
        self.watcher = None
        if self.run_dir is None and opts.watch_interval != _default("watch_interval"):
            log.warning("--watch-interval has no effect: %s is a checkpoint, not a run folder whose checkpoint-last "
                        "could be replaced (nothing to watch)", opts.model_dir)
        if self.run_dir is not None and opts.watch:
            self.watcher = ModelWatcher(self.run_dir, lambda: self.model, self.swap, opts.backend, opts.device,
                                        opts.num_threads, opts.watch_interval)

    def swap(self, model: ServedModel) -> None:
        self.model = model  # one assignment: each request keeps the model it was encoded with

    def metadata(self) -> dict[str, Any]:
        o = self.opts
        return {**self.model.metadata(),
                "watching": str(self.run_dir / "checkpoint-last") if self.watcher is not None else None,
                "batching": {"max_batch": o.max_batch, "max_wait_ms": o.batch_wait_ms,
                             "batches": self.batcher.batches, "sessions": self.batcher.sessions,
                             "largest_batch": self.batcher.largest},
                "limits": {"max_k": _max_k(o, self.model), "max_items": o.max_items, "max_body_bytes": o.max_body_bytes,
                           "max_concurrency": o.max_concurrency, "read_timeout": o.read_timeout}}



def _max_k(opts: Options, model: ServedModel) -> int:
    return min(opts.max_k, model.rec.schema.n_items - 1)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _json(content: Any, status: int = 200) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


_UNION_TAGS = {"int", "str", "float", "bool"}  # pydantic names the member of a union that failed in the location
# what a field's values of several accepted types are, for a value of none of them
_UNION_WORDS = {"items": "an item id (a whole number or text)", "timestamps": "a number (epoch seconds)",
                "features": "a feature value (text, a number or null)"}


def _validation_message(errors: list[dict]) -> tuple[int, str]:
    """One line for pydantic's errors: the first place that is wrong and what each accepted type says; an unknown
    field first (``itemz`` is why ``items`` is missing)."""
    errors = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, f"invalid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"

    def place(e: dict) -> str:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        while loc and loc[-1] in _UNION_TAGS:
            loc.pop()
        return ".".join(loc) or "body"

    where = place(first)
    same = [e for e in errors if place(e) == where]
    messages = list(dict.fromkeys(e.get("msg", "") for e in same))
    more = len({place(e) for e in errors}) - 1  # other places (an error per type tried at each)
    root = str((first.get("loc") or ("",))[0])
    if len(messages) > 1 and root in _UNION_WORDS:  # one line for what the field takes, not one per type it tried
        value = json.dumps(first.get("input"), ensure_ascii=False)
        message = f"{value if len(value) <= 60 else value[:57] + '...'} is not {_UNION_WORDS[root]}"
    else:
        message = " or ".join(messages)
    return 422, f"{where}: {message}" + (f" (and {more} more)" if more else "")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BadRequest(413, f"request body of {int(length):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():  # also a chunked body without a length
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or timed out by the protocol (which answered): nobody reads this answer
        raise BadRequest(400, "the client left before sending the whole body") from None
    return b"".join(chunks)


def create_app(server: Server) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await server.batcher.start()
        if server.watcher is not None:
            server.watcher.start()
        try:
            yield
        finally:
            if server.watcher is not None:
                server.watcher.stop()
            await server.batcher.stop()

    app = FastAPI(title="sessrec", summary="next-item recommendations from a sessrec model", lifespan=lifespan)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _error(*_validation_message(list(exc.errors())))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> Response:
        log.exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/health")
    async def health() -> Response:
        return _json({"status": "ok", "version": server.model.version, "window": server.model.trained_window})

    @app.get("/metadata")
    async def metadata() -> Response:
        return _json(server.metadata())

    async def recommend(request: Request) -> Response:
        """Top-k next items for one session (JSON body: see RecommendRequest)."""
        batcher = server.batcher
        token = batcher.arrive()
        try:
            try:
                body = await _read_body(request, server.opts.max_body_bytes)
                req = RecommendRequest.model_validate_json(body)
                model = server.model
                session = _check(req, server.opts, model)
                encoded = model.rec.encode(session, server.opts.strict if req.strict is None else req.strict)
            finally:
                batcher.arrived(token)
        except BadRequest as e:
            return _error(e.status, e.message)
        except ValidationError as e:
            return _error(*_validation_message(e.errors(include_url=False)))
        except SessrecError as e:
            return _error(422, str(e))
        answer = await batcher.submit(model, encoded, req.k, req.exclude_seen)
        return _json({"items": answer.items, "scores": answer.scores, "unknown": encoded.unknown, "version": model.version})

    # A plain Starlette route: FastAPI's parameter handling cost 0.1 ms more CPU per request (0.65-0.67
    # against 0.52-0.57 ms at concurrency 64, measured), a fifth of the server's work; the request is
    # read and checked above instead, and the route is added to the OpenAPI document by hand.
    app.add_route("/recommend", recommend, methods=["POST"], include_in_schema=False)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        error = {"content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}
        doc["paths"]["/recommend"] = {"post": {
            "summary": "Recommend", "description": "Top-k next items for one session, oldest item first.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": RecommendRequest.model_json_schema()}}},
            "responses": {"200": {"description": "items (original ids), scores, unknown items, model version"},
                          "400": {"description": "invalid JSON", **error}, "413": {"description": "body too large", **error},
                          "422": {"description": "a bad request", **error}}}}
        app.openapi_schema = doc
    return app.openapi_schema


def _check(req: RecommendRequest, opts: Options, model: ServedModel) -> dict[str, Any]:
    if not req.items:
        raise BadRequest(422, "items: the session is empty")
    if len(req.items) > opts.max_items:
        raise BadRequest(422, f"items: {len(req.items):,} items, over the limit of {opts.max_items:,}")
    max_k = _max_k(opts, model)
    if not 1 <= req.k <= max_k:
        raise BadRequest(422, f"k must be between 1 and {max_k} (got {req.k})")
    session: dict[str, Any] = {"items": [_whole_item(v, i) if isinstance(v, float) else v for i, v in enumerate(req.items)]}
    if req.timestamps is not None:
        session["timestamps"] = req.timestamps
    if req.features:
        session["features"] = req.features
    return session


def _whole_item(value: float, i: int) -> int:
    if not whole_float(value):
        raise BadRequest(422, f"items.{i}: {value!r} is not an item id (a whole number or text)")
    if abs(value) >= 2**53:
        raise BadRequest(422, f"items.{i}: {float_beyond_ids(value)}")
    return int(value)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so the address is known before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SessrecError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    return sock


def uvicorn_server(app: FastAPI, opts: Options):  # -> uvicorn.Server (imported here: only serve needs it)
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Stops on SIGINT / SIGTERM after the open requests are answered, and returns (uvicorn would
        raise the signal again once stopped, killing the process): ``sessrec serve`` then exits 0."""

        stopped_by: int | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.stopped_by = sig
            super().handle_exit(sig, frame)
            getattr(self, "_captured_signals", []).clear()

    # a stalled request is answered 408 after --read-timeout: a stop waits for that answer
    config = uvicorn.Config(app, log_level="warning", access_log=opts.access_log, lifespan="on",
                            http=timed_protocol(opts.read_timeout), limit_concurrency=opts.max_concurrency,
                            timeout_graceful_shutdown=max(10.0, opts.read_timeout + 1))
    return GracefulServer(config)


def timed_protocol(read_timeout: float) -> type:
    """uvicorn's httptools protocol with a limit on the time a client takes to send a whole request, counted from
    the connection's opening or its previous answer. uvicorn closes only a connection left idle after an answer:
    one that never sent a request, or stalled in the middle of one, held a place of --max-concurrency for good,
    and a thousand of them made every request a 503. (One timer per request: ``asyncio.wait_for`` around the
    body's reading in the route cost 28 us a request, 5 % of the server's work.)"""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _began = False  # bytes of the awaited request arrived

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_request()

        def data_received(self, data: bytes) -> None:
            self._began = True
            super().data_received(data)

        def on_message_complete(self) -> None:
            if self.cycle is not None and self.cycle.response_complete:  # the rest of a body answered early (413)
                self._began = False
            else:
                self._stop_timer()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

        def _await_request(self) -> None:
            self._stop_timer()
            self._began = False
            self._timer = self.loop.call_later(read_timeout, self._timed_out)

        def _stop_timer(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _timed_out(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
            if self._began and not answering:  # else a silent connection, closed as uvicorn closes an idle one
                message = f"Request not received within --read-timeout ({read_timeout:g} s)."
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                     + f"content-length: {len(message)}\r\nconnection: close\r\n\r\n{message}".encode())
            self.transport.close()  # a route still reading the body sees the client leave

    return TimedProtocol


def serve(opts: Options, say: Callable[[str], None] = print) -> None:
    """Load the model, listen, say where, and answer until SIGINT / SIGTERM."""
    server = Server(opts)
    sock = bind(opts.host, opts.port)
    host, port = sock.getsockname()[:2]
    m = server.model
    say(f"sessrec serve: http://{host if ':' not in host else f'[{host}]'}:{port} | {m.source} (window "
        f"{m.trained_window}) | backend {m.backend} | "
        + (f"watching {server.run_dir / 'checkpoint-last'}" if server.watcher else "not watching for new models")
        + " | " + json.dumps({k: v for k, v in asdict(opts).items() if k in ("max_batch", "batch_wait_ms")}))
    uv = uvicorn_server(create_app(server), opts)
    uv.run(sockets=[sock])
    if uv.stopped_by is not None:
        say(f"sessrec serve: stopped by {signal.Signals(uv.stopped_by).name}")
