import importlib.util
import json

import pytest
import torch

from sessrec.baselines.pop import MostPopular
from sessrec.checkpoint import save_checkpoint
from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors
from sessrec.errors import SessrecError
from sessrec.export import export_model
from sessrec.recommend import keep_last
from tests.test_recommend import SCHEMA, side_info, trained_checkpoint  # noqa: F401 (side_info is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]


def real_sessions(data: SessionTensors, n: int = 50) -> dict[str, torch.Tensor]:
    """Sessions of the data (not the random ones export_model checks itself), some cut short."""
    batch = {k: v[:n].clone() for k, v in data.features.items()}
    for k in batch:
        batch[k][::3, 2:] = 0
    return batch


def test_torchscript_scores_equal_pytorch(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, learner = trained_checkpoint(tmp_path / "ckpt", SCHEMA, data)
    res = export_model(folder, "torchscript", tmp_path / "m.pt")
    assert res.max_abs_diff == 0.0 and res.input_names == ["item"]
    extra = {"sessrec.json": ""}
    loaded = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["sessrec.json"])["session_seq_length_max"] == 8
    batch = real_sessions(data)
    with torch.no_grad():
        assert torch.allclose(loaded(batch["item"]), learner.score(batch), atol=1e-5)


def test_torchscript_of_a_side_information_model_takes_every_feature(tmp_path, side_info, capsys):  # noqa: F811
    schema, data = side_info
    folder, learner = trained_checkpoint(tmp_path / "ckpt", schema, data, use_side_information_features=True,
                                         model_type="gpt2", task="clm")
    assert main(["export", "--model-dir", str(folder), "--format", "torchscript", "--output", str(tmp_path / "m.pt")]) == 0
    assert "inputs: sess_pid_seq, sess_ccid_seq" in capsys.readouterr().out
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    batch = real_sessions(data)
    with torch.no_grad():
        assert torch.allclose(loaded(*(batch[n] for n in learner.input_names)), learner.score(batch), atol=1e-5)


@pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs the 'export' extra; missing: {', '.join(ONNX_MISSING)}")
def test_onnx_scores_equal_pytorch(tmp_path, side_info):  # noqa: F811
    import onnx
    import onnxruntime

    schema, data = side_info
    folder, learner = trained_checkpoint(tmp_path / "ckpt", schema, data, use_side_information_features=True)
    res = export_model(folder, "onnx", tmp_path / "m.onnx")
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["sessrec"])["input_names"] == learner.input_names
    batch = keep_last(real_sessions(data, 23), schema.item_id.name, 8)  # a batch size never exported with
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: batch[n].numpy() for n in learner.input_names})[0]
    assert torch.allclose(torch.from_numpy(got), learner.score(batch), atol=1e-4)


def test_only_neural_models_are_exported(tmp_path, capsys):
    folder = save_checkpoint(tmp_path, 1, ExperimentConfig(model_type="pop"), SCHEMA, {"model": MostPopular(None, SCHEMA)}, {})
    assert main(["export", "--model-dir", str(folder), "--format", "torchscript"]) == 2
    assert "only neural models can be exported" in capsys.readouterr().err


def test_export_never_overwrites_a_checkpoint_and_an_existing_file_only_with_overwrite(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    data = SessionTensors({"item": torch.randint(1, 30, (64, 8), generator=g)}, "item")
    folder, _ = trained_checkpoint(tmp_path / "ckpt", SCHEMA, data)
    weights = (folder / "model.safetensors").read_bytes()
    for target in (folder / "model.safetensors", folder / "model.pt"):  # with --overwrite too: the checkpoint stays whole
        assert main(["export", "--model-dir", str(folder), "--format", "torchscript", "--output", str(target), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"--output {target} is inside the checkpoint folder {folder}: writing there would damage it" in err
        assert err.count("\n") == 1
    assert (folder / "model.safetensors").read_bytes() == weights and not (folder / "model.pt").exists()
    mine = tmp_path / "events.csv"
    mine.write_text("session,item\n")
    assert main(["export", "--model-dir", str(folder), "--format", "torchscript", "--output", str(mine)]) == 2
    assert f"--output {mine} exists: pass --overwrite to replace it" in capsys.readouterr().err
    assert mine.read_text() == "session,item\n"
    with pytest.raises(SessrecError, match="exists: pass --overwrite"):
        export_model(folder, "torchscript", mine)
    assert export_model(folder, "torchscript", mine, overwrite=True).max_abs_diff == 0.0
    assert torch.jit.load(str(mine)) is not None and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
