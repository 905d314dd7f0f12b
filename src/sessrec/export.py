"""``sessrec export``: a trained session model as a TorchScript or ONNX scoring graph for serving.

The exported graph takes the model's input features in ``input_names`` order (the item id first,
then side-information features when the model was trained with them), each a right-padded
``[batch, session_seq_length_max]`` tensor (int64 ids, 0 = padding; float32 for continuous
features; float64 for the time column of a model that reads it, HSTU; sessions longer than that
keep their last interactions), and returns ``[batch, n_items - 1]`` scores: column j is item id j + 1. It is the scoring path of evaluation and
``recommend`` (``SessionModel.next_item_scores``), so top-k over these scores gives the same items.

TorchScript comes from ``torch.jit.trace`` (``torch.jit.script`` cannot compile the HuggingFace
bodies; tracing is deprecated upstream but still works with torch 2.13 and transformers 5.x).
ONNX comes from ``torch.onnx.export(dynamo=True)``, i.e. ``torch.export``, with a dynamic batch
size; it needs the optional packages ``onnx`` and ``onnxscript`` (``pip install 'sessrec[export]'``),
and ``onnxruntime`` to check the result. Every export is checked: the exported graph and the
PyTorch model score the same random sessions, and the largest difference is reported.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sessrec.data.loader import Batch
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_bytes, check_output_file, writing
from sessrec.recommend import Recommender
from sessrec.schema import Schema

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


class ScoringModule(nn.Module):
    """``forward(*features)`` → ``[batch, n_items - 1]`` scores; features in ``input_names`` order."""

    def __init__(self, model: nn.Module, input_names: list[str]):
        super().__init__()
        self.model = model.eval()
        self.input_names = list(input_names)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.model.next_item_scores(dict(zip(self.input_names, features)))


def random_sessions(schema: Schema, input_names: list[str], max_len: int, n: int, seed: int = 0) -> Batch:
    """``n`` right-padded sessions with valid values: full-length ones, single items, and lengths between."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (n,), generator=g)
    lengths[0], lengths[-1] = max_len, 1
    real = torch.arange(max_len) < lengths.view(-1, 1)
    batch: Batch = {}
    for name in input_names:
        spec = schema[name]
        if spec.is_categorical:
            values = torch.randint(1, max(spec.cardinality or 2, 2), (n, max_len), generator=g)
        elif spec.is_time:  # epoch seconds, increasing within a session by gaps of seconds to days
            gaps = torch.exp(torch.rand(n, max_len, generator=g, dtype=torch.float64) * 12.0)
            values = 1.7e9 + gaps.cumsum(1)
        else:
            values = torch.randn(n, max_len, generator=g)
        batch[name] = torch.where(real, values, torch.zeros((), dtype=values.dtype))
    return batch


@dataclass
class ExportResult:
    path: Path
    input_names: list[str]
    max_abs_diff: float | None  # exported vs PyTorch scores on random sessions; None when not checked
    n_checked: int


def export_model(model_dir: str | Path, fmt: str, output: str | Path | None = None,
                 overwrite: bool = False) -> ExportResult:
    """Export the model of a checkpoint folder; returns where it went and how closely it matches PyTorch.

    ``output`` (default ``model.pt`` / ``model.onnx`` here) must not exist unless ``overwrite``, and may never
    lie inside a checkpoint or prepared data folder (``model_dir`` included): a one-line error, before loading."""
    if fmt not in FORMATS:
        raise SessrecError(f"format must be one of {', '.join(FORMATS)} (got '{fmt}')")
    path = check_output_file(output if output else f"model{SUFFIX[fmt]}", "--output", overwrite=overwrite)
    rec = Recommender.load(model_dir, device="cpu")
    return export_recommender(rec, fmt, path, str(model_dir))


def export_recommender(rec: Recommender, fmt: str, path: Path, name: str = "the model") -> ExportResult:
    """Export a loaded model (on the CPU) to ``path``; see :func:`export_model`."""
    model = getattr(rec.learner, "model", None)
    if not isinstance(model, nn.Module):
        raise SessrecError(f"only neural models can be exported; {name} holds a '{type(rec.learner).__name__}' (a "
                           "baseline is recommended from and served as it is: sessrec recommend, sessrec serve "
                           "--backend eager)")
    names = rec.input_names
    module = ScoringModule(model, names)
    example = random_sessions(rec.schema, names, rec.max_len, 4, seed=1)
    check = random_sessions(rec.schema, names, rec.max_len, 37, seed=2)  # another batch size than the example
    with torch.no_grad():
        expected = module(*(check[n] for n in names))
    meta = {"input_names": names, "session_seq_length_max": rec.max_len, "n_items": rec.schema.n_items,
            "output": "scores [batch, n_items - 1]; column j is item id j + 1",
            "padding": "right, with 0; sessions longer than session_seq_length_max keep their last items"}
    if fmt == "torchscript":
        got = _torchscript(module, example, check, names, path, meta)
    else:
        got = _onnx(module, example, check, names, path, meta)
    diff = None if got is None else float((got - expected).abs().max())
    return ExportResult(path, names, diff, len(check[names[0]]))


def _torchscript(module: nn.Module, example: Batch, check: Batch, names: list[str], path: Path,
                 meta: dict) -> torch.Tensor:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings: the result is checked below instead
        traced = torch.jit.trace(module, tuple(example[n] for n in names), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={"sessrec.json": json.dumps(meta)})
        atomic_write_bytes(path, buf.getvalue())
        return torch.jit.load(str(path))(*(check[n] for n in names))


def _onnx(module: nn.Module, example: Batch, check: Batch, names: list[str], path: Path,
          meta: dict) -> torch.Tensor | None:
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise SessrecError(f"ONNX export needs {' and '.join(missing)}: pip install 'sessrec[export]'")
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")  # it warns about every missing torchvision operator
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, tuple(example[n] for n in names), dynamo=True, verbose=False,
                                        input_names=names, output_names=["scores"],
                                        dynamic_shapes=(tuple({0: batch} for _ in names),))  # one entry: *features
    finally:
        quiet.setLevel(level)
    program.model.metadata_props["sessrec"] = json.dumps(meta)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:  # rename into place: never half-written
            program.save(str(Path(tmp) / path.name))
            for f in Path(tmp).iterdir():  # the model, and its external weights file when it is large
                shutil.move(str(f), str(path.parent / f.name))
    if importlib.util.find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed: the exported ONNX model was not checked against PyTorch")
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {n: check[n].numpy() for n in names})[0])
