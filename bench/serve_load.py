"""Load on ``sessrec serve`` over loopback: QPS, latency percentiles, errors and server memory.

Builds (once, cached in ``--work``) the default model on a generated catalog: the sample
generator's sessions over ``--items`` items as a raw event log, ``sessrec prepare events``, then
``sessrec run`` with its defaults (XLNet-MLM, d_model 64) on windows 1-2 for ``--max-steps``
steps (serving speed depends on the architecture and the catalog, not on how long it trained).
Then, for each backend and with micro-batching on (``--max-batch 64``) and off (``--max-batch 1``),
starts ``sessrec serve`` in its own process and runs a closed-loop load at each concurrency for
``--duration`` seconds: that many clients each send a request (a session of 1-20 original item
ids from the data, ``k`` 10, ``exclude_seen``) as soon as their previous one is answered. The
load stops by itself. Printed per row: requests per second, latency p50/p95/p99 (ms, measured
by the client: connection, server and client time), errors (non-200 answers and failed
requests), the server's resident memory (MB) at the start and end of the row, and the CPU time
the server and the client spent per request (what a busy shared machine changes least). With
``--memory-duration S`` a last run at the highest concurrency prints the server's memory every
few seconds over S seconds. The client runs in this process (asyncio, one keep-alive connection
per concurrent client); it shares the machine's cores with the server, as a sidecar would.

    python bench/serve_load.py                                   # everything, 10 s per row
    python bench/serve_load.py --backends eager --concurrency 1 64 --duration 20 --memory-duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path

ROOT = Path(__file__).resolve().parents[1]


def build_model(work: Path, items: int, sessions_per_day: int, max_steps: int) -> Path:
    """The run folder of the default model on a generated catalog (made once for these sizes: delete ``work``
    after a change to sessrec's code to build it again)."""
    run = work / f"run-{items}-{sessions_per_day}-{max_steps}"
    if (run / "checkpoint-last").is_dir():
        return run
    from sessrec.cli import main
    from sessrec.data.sample import generate_sample, sample_event_log

    began = time.perf_counter()
    generate_sample(work / "sample", n_days=2, sessions_per_day=sessions_per_day, n_items=items, seed=1)
    log = sample_event_log(work / "sample", work / "events.parquet")
    data = work / f"data-{items}-{sessions_per_day}"
    assert main(["prepare", "events", "--input", str(log), "--session-col", "session", "--item-col", "item",
                 "--time-col", "time", "--output", str(data), "--overwrite", "--quiet"]) == 0
    assert main(["run", "--data-path", str(data), "--output-dir", str(run), "--overwrite-output-dir",
                 "--max-steps", str(max_steps), "--final-time-window-index", "2", "--quiet"]) == 0
    print(f"built the model in {time.perf_counter() - began:.0f} s: {run}", flush=True)
    return run


def request_sessions(run: Path, n: int, seed: int = 0) -> list[list]:
    """``n`` sessions of original item ids (1-20 items) from window 2's valid split."""
    import pyarrow.parquet as pq

    from sessrec.config import ExperimentConfig
    from sessrec.data.catalog import Catalog

    data = Path(ExperimentConfig.from_yaml(run / "config.yaml").data_path)
    catalog = Catalog.load(data)
    rows = pq.read_table(data / "0002" / "valid.parquet", columns=["item_id"]).column("item_id").to_pylist()
    rng = random.Random(seed)
    return [catalog.decode(rows[rng.randrange(len(rows))]) for _ in range(n)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(run: Path, backend: str, max_batch: int, threads: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "sessrec.cli", "serve", "--model-dir", str(run), "--port", "0", "--no-watch",
           "--backend", backend, "--max-batch", str(max_batch), "--num-threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    m = re.match(r"sessrec serve: (http://\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, m.group(1)


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON bodies. Written here because the client
    shares the cores with the server: httpx's async client cost 1.1 ms of CPU per request at
    concurrency 1 and 5.7 ms at 64 here (measured), more than the server itself; this one 0.03-0.1 ms."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        """The answer's status; the connection is opened (again) when needed."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                              % (path.encode(), self.host.encode(), len(body), body))
            head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
            at = head.index(b"content-length:") + 15
            await self.reader.readexactly(int(head[at:head.index(b"\r\n", at)]))
            return int(head[9:12])
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def load(url: str, bodies: list[bytes], concurrency: int, duration: float,
               pid: int | None = None, every: float = 0.0) -> tuple[list[float], int, float, list[float]]:
    """Closed-loop load for ``duration`` seconds: latencies of the answered requests, errors, seconds,
    and (with ``pid`` and ``every``) the server's RSS every ``every`` seconds."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    errors = 0
    memory: list[float] = []
    end = time.perf_counter() + duration

    async def worker(w: int) -> None:
        nonlocal errors
        conn = Connection(host, int(port))
        i = w
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                ok = await asyncio.wait_for(conn.post("/recommend", bodies[i % len(bodies)]), 30) == 200
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                conn.close()
                ok = False
            i += concurrency
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors += 1
        conn.close()

    async def sample() -> None:
        while time.perf_counter() < end:
            memory.append(rss_mb(pid))
            await asyncio.sleep(every)
        memory.append(rss_mb(pid))

    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)), *([sample()] if pid and every else []))
    return latencies, errors, time.perf_counter() - began, memory


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000 if sorted_values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--work", type=Path, default=Path("/tmp/sessrec-serve-bench"), help="where the model is built and kept")
    ap.add_argument("--model-dir", type=Path, help="serve this run folder instead of building the default model")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--sessions-per-day", type=int, default=60_000, help="generated sessions per day (2 days)")
    ap.add_argument("--max-steps", type=int, default=50, help="training steps of the built model per window")
    ap.add_argument("--backends", nargs="+", default=["eager", "torchscript", "onnx"])
    ap.add_argument("--batching", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    ap.add_argument("--memory-duration", type=float, default=0.0, help="then the memory over this many seconds")
    ap.add_argument("--threads", type=int, default=1, help="the server's --num-threads")
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    run = args.model_dir or build_model(args.work, args.items, args.sessions_per_day, args.max_steps)
    bodies = [json.dumps({"items": s, "k": 10, "exclude_seen": True}).encode() for s in request_sessions(run, 5000)]
    print(describe())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print(f"model: {run}; {args.duration:g} s per row; server --num-threads {args.threads}; client: this process")
    print(f"{'backend':<12} {'batching':<9} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'RSS MB start→end':>17} {'CPU ms/req server':>17} {'client':>6}", flush=True)
    for backend in args.backends:
        for batching in args.batching:
            proc, url = start_server(run, backend, 64 if batching == "on" else 1, args.threads)
            try:
                asyncio.run(load(url, bodies, 4, 2.0))  # warm-up
                for c in args.concurrency:
                    before, server_cpu, client_cpu = rss_mb(proc.pid), cpu_seconds(proc.pid), time.process_time()
                    lat, errors, seconds, _ = asyncio.run(load(url, bodies, c, args.duration))
                    n = max(len(lat) + errors, 1)
                    server_cpu, client_cpu = cpu_seconds(proc.pid) - server_cpu, time.process_time() - client_cpu
                    lat.sort()
                    print(f"{backend:<12} {batching:<9} {c:>4} {len(lat) / seconds:>8.0f} {percentile(lat, 0.50):>8.2f} "
                          f"{percentile(lat, 0.95):>8.2f} {percentile(lat, 0.99):>8.2f} {errors:>6} "
                          f"{before:>8.0f}→{rss_mb(proc.pid):<8.0f} {server_cpu / n * 1000:>17.2f} "
                          f"{client_cpu / n * 1000:>6.2f}", flush=True)
                if args.memory_duration and (backend, batching) == (args.backends[0], args.batching[0]):
                    memory_run(url, proc, bodies, max(args.concurrency), args.memory_duration)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")


def memory_run(url: str, proc: subprocess.Popen, bodies: list[bytes], concurrency: int, duration: float) -> None:
    """The server's resident memory every ``duration / 12`` seconds under load."""
    lat, errors, seconds, memory = asyncio.run(load(url, bodies, concurrency, duration, proc.pid, duration / 12))
    print(f"memory over {seconds:.0f} s at concurrency {concurrency} ({len(lat):,} requests, {len(lat) / seconds:.0f}/s, "
          f"{errors} errors): " + " ".join(f"{m:.0f}" for m in memory) + " MB", flush=True)


if __name__ == "__main__":
    main()
