"""Presets: the paper's best configurations, generated from the published command lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessrec.cli import main
from sessrec.errors import SessrecError
from sessrec.presets import list_presets, load_preset

ROOT = Path(__file__).resolve().parents[1]


def test_presets_match_the_published_command_lines():
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_presets.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_group_has_a_preset():
    names = list_presets()
    paper = [n for n in names if not n.startswith("recent/")]
    assert len(paper) == 65
    assert {"rees46/xlnet-mlm", "yoochoose/gru4rec-swt", "g1/xlnet-mlm-concat-sohe", "adressa/albert-mlm"} <= set(names)
    mlm = load_preset("rees46/xlnet-mlm")
    assert (mlm["d_model"], mlm["n_layer"], mlm["n_head"], mlm["mlm_probability"]) == (192, 3, 16, 0.3)
    assert load_preset("rees46/vsknn")["baseline_params"]["k"] == 600


def test_unknown_preset_names_the_closest(tmp_path):
    with pytest.raises(SessrecError, match="did you mean rees46/xlnet-mlm"):
        load_preset("rees46/xlnet-mlmm")


def test_run_with_a_preset_flags_override_it(tiny_data, tmp_path, capsys):
    assert main(["run", "--list-presets"]) == 0
    assert "rees46/xlnet-mlm" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "--preset", "rees46/gpt2-clm", "--data-path", str(tiny_data), "-o", str(out), "--d-model", "16",
                 "--max-steps", "2", "--final-time-window-index", "3", "--quiet"]) == 0
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["task"] == "clm" and cfg["d_model"] == 16  # the flag wins
    assert cfg["label_smoothing"] == 0.9 and cfg["eval_on_test_set"] is True  # from the preset


def test_recent_presets_are_listed_valid_and_run(tiny_data, tmp_path, capsys):
    assert {"recent/sasrec-plus", "recent/gsasrec", "recent/hstu"} <= set(list_presets())
    plus, gsas, hstu = load_preset("recent/sasrec-plus"), load_preset("recent/gsasrec"), load_preset("recent/hstu")
    assert (plus["model_type"], plus["loss_type"]) == ("sasrec", "cross_entropy")
    assert (gsas["model_type"], gsas["loss_type"], gsas["gbce_t"], gsas["num_negatives"]) == ("sasrec", "gbce", 0.75, 256)
    assert (hstu["model_type"], hstu["task"], hstu["learning_rate"]) == ("hstu", "clm", 0.01)
    from sessrec.config import ExperimentConfig

    for values in (plus, gsas, hstu):
        ExperimentConfig.from_dict(values).validate()
    assert main(["run", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    assert "recent/sasrec-plus" in listed and "recent/gsasrec" in listed and "recent/hstu" in listed
    for name in ("recent/sasrec-plus", "recent/gsasrec", "recent/hstu"):
        out = tmp_path / name.replace("/", "-")
        assert main(["run", "--preset", name, "--data-path", str(tiny_data), "-o", str(out), "--d-model", "16",
                     "--max-steps", "2", "--final-time-window-index", "3", "--quiet"]) == 0
        import yaml

        cfg = yaml.safe_load((out / "config.yaml").read_text())
        assert cfg["model_type"] == load_preset(name)["model_type"] and cfg["d_model"] == 16
        assert cfg["loss_type"] == load_preset(name).get("loss_type", "cross_entropy")
