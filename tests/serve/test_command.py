"""``sessrec serve`` as a user starts it: a process that says where it listens, answers, and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sessrec.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "sessrec.cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_serve_command_answers_and_stops_on_sigterm(catalog_run):
    """A request whose client stalls sending its body is answered 408 after --read-timeout, also while the server
    stops (it was a 500 and a traceback in the log after uvicorn's 10 s of grace)."""
    proc = _start("--model-dir", str(catalog_run), "--port", "0", "--no-watch", "--read-timeout", "1")
    try:
        line = proc.stdout.readline()
        m = re.match(r"sessrec serve: (http://127\.0\.0\.1:\d+) \| .*checkpoint-\w+ \(window 2\) \| backend eager", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        with httpx.Client(base_url=m.group(1), timeout=30) as client:
            assert client.get("/health").json()["status"] == "ok"
            assert client.post("/recommend", json={"items": [1000084], "k": 3}).status_code == 200
            port = int(m.group(1).rsplit(":", 1)[1])
            # a second server on the same port: one line, exit 2
            assert main(["serve", "--model-dir", str(catalog_run), "--port", str(port)]) == 2
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
            stalled.sendall(b"POST /recommend HTTP/1.1\r\nhost: x\r\ncontent-length: 30\r\n\r\n{\"items\": [")
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            answer = stalled.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_refuses_what_it_cannot_serve(tmp_path, capsys):
    assert main(["serve", "--model-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "log.csv").write_text("a,b\n")
    assert main(["serve", "--model-dir", str(tmp_path / "log.csv")]) == 2
    assert f"--model-dir {tmp_path / 'log.csv'} is not a folder: give a run folder" in capsys.readouterr().err
    assert main(["serve", "--model-dir", str(tmp_path), "--num-threads", "-1"]) == 2
    assert "--num-threads must be >= 0" in capsys.readouterr().err
    assert main(["serve", "--model-dir", str(tmp_path)]) == 2
    assert "is not a sessrec checkpoint" in capsys.readouterr().err
    assert main(["serve", "--model-dir", str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be >= 1" in capsys.readouterr().err
