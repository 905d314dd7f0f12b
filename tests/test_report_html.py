"""report.html: self-contained, and a real browser draws it (not a blank page)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sessrec.cli import main
from tests.conftest import tiny_config

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def report_dir(tiny_data, tmp_path_factory) -> Path:
    from sessrec.multiseed import run_seeds

    root = tmp_path_factory.mktemp("html")
    run_seeds(tiny_config(tiny_data, root / "gpt2", model_type="gpt2", task="clm", final_time_window_index=4, logging_steps=1),
              [1, 2], root / "gpt2", printer=lambda *_: None)
    run_seeds(tiny_config(tiny_data, root / "xlnet", final_time_window_index=4, logging_steps=1), [1, 2], root / "xlnet",
              printer=lambda *_: None)
    assert main(["report", str(root / "gpt2"), str(root / "xlnet"), "-o", str(root / "report")]) == 0
    return root / "report"


def test_the_page_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "GPT-2 (CLM)" in page and "XLNet (MLM)" in page and "Most popular" in page
    assert page.count("data:image/png;base64,") == 2  # per-window metrics and training loss
    for reference in ('src="http', "href=", "<script", "<link"):
        assert reference not in page  # nothing loaded from elsewhere
    assert " ± " in page  # two seeds per row: mean ± std


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package chromium; .ci/run installs it)")
def test_headless_chromium_draws_the_page(report_dir, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
                    (report_dir / "report.html").resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    ink = (pixels.mean(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert ink > 0.02 and colours > 50, (ink, colours)  # text, table borders and the plots, not a blank page
