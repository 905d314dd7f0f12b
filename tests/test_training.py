import json
import math

import pytest
import torch
import transformers

from sessrec.training import lr_factor

TRANSFORMERS = {
    "constant": lambda opt, w, t: transformers.get_constant_schedule_with_warmup(opt, w),
    "linear": lambda opt, w, t: transformers.get_linear_schedule_with_warmup(opt, w, t),
    "cosine": lambda opt, w, t: transformers.get_cosine_schedule_with_warmup(opt, w, t, num_cycles=1.5),
}


@pytest.mark.parametrize("schedule", sorted(TRANSFORMERS))
@pytest.mark.parametrize("warmup", [0, 7])
def test_lr_factor_equals_the_transformers_schedules(schedule, warmup):
    total = 40
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = TRANSFORMERS[schedule](opt, warmup, total)
    for step in range(total + 3):
        assert lr_factor(schedule, step, warmup, total, 1.5) == pytest.approx(ref.lr_lambdas[0](step), abs=1e-12), step


def test_lr_factor_hand_computed():
    assert lr_factor("linear", 2, 4, 10) == 0.5  # warm-up: 2 / 4
    assert lr_factor("linear", 7, 4, 10) == 0.5  # (10 - 7) / (10 - 4)
    assert lr_factor("cosine", 7, 4, 10, 0.5) == pytest.approx(0.5)  # half way: cos(pi / 2) = 0
    assert lr_factor("constant", 9, 4, 10) == 1.0


def test_fit_window_hands_the_logits_buffer_back(tiny_data, tmp_path, monkeypatch):
    """The loss keeps its logits buffer from step to step, and gives it up after the window, for
    evaluation to use the memory."""
    import sessrec.losses as L
    from sessrec.data.loader import load_sessions
    from sessrec.experiment import resolve_data
    from sessrec.learners import build_learner
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_data, tmp_path)
    data_path, schema = resolve_data(cfg)
    learner = build_learner(cfg, schema)
    data = load_sessions(data_path / "0001" / "train.parquet", schema, cfg.session_seq_length_max)
    taken = []
    take = L._take_workspace
    monkeypatch.setattr(L, "_take_workspace", lambda numel, device: taken.append(numel) or take(numel, device))
    learner.fit_window(data, 1)
    assert taken and not L._WORKSPACE


def _window(tiny_data, tmp_path, **kw):
    from sessrec.data.loader import load_sessions
    from sessrec.experiment import resolve_data
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_data, tmp_path, **kw)
    data_path, schema = resolve_data(cfg)
    return cfg, schema, load_sessions(data_path / "0001" / "train.parquet", schema, cfg.session_seq_length_max)


@pytest.mark.parametrize("stop_after,kw", [(0, {}), (5, {}), (8, {}),
                                           (11, {"stochastic_shared_embeddings_replacement_prob": 0.3}),
                                           (5, {"model_type": "gpt2", "task": "clm"}), (5, {"task": "plm"}),
                                           (5, {"model_type": "electra", "task": "rtd"}), (5, {"model_type": "transfoxl", "task": "clm"})])
def test_a_window_stopped_between_steps_continues_exactly(tiny_data, tmp_path, monkeypatch, stop_after, kw):
    """Stopped after ``stop_after`` steps (0: before the first; 8: at the end of the first epoch),
    saved, loaded into a new learner: the window ends as if never stopped (weights, mean loss),
    also with SSE drawing from the model's own generator."""
    import sessrec.distributed as D
    from sessrec.checkpoint import read_state, rng_state, set_rng_state, write_state
    from sessrec.learners import build_learner
    from sessrec.stopping import StopRequested

    cfg, schema, data = _window(tiny_data, tmp_path, max_steps=-1, num_train_epochs=2, **kw)  # 8 batches an epoch, 16 steps
    straight = build_learner(cfg, schema)
    expected = straight.fit_window(data, 1)
    assert expected["train_steps"] == 16

    stopped = build_learner(cfg, schema)
    calls = iter(range(1000))  # stop_requested() is asked before the first step, then after each
    monkeypatch.setattr(D, "stop_requested", lambda: 15 if next(calls) == stop_after else None)
    with pytest.raises(StopRequested, match=f"after step {stop_after} of 16"):
        stopped.fit_window(data, 1)
    write_state(tmp_path / "state.safetensors", stopped.state_dict())
    rng = rng_state()  # dropout draws from the global generator

    monkeypatch.setattr(D, "stop_requested", lambda: None)
    resumed = build_learner(cfg, schema)
    resumed.load_state_dict(read_state(tmp_path / "state.safetensors"))
    set_rng_state(rng)
    got = resumed.fit_window(data, 1)
    assert got["train_loss"] == expected["train_loss"] and got["train_steps"] == 16
    assert resumed.global_step == straight.global_step == 16 and resumed.progress is None
    for name, weight in straight.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name


def test_a_non_finite_loss_stops_the_run_naming_window_and_step(tiny_data, tmp_path, capsys):
    """learning_rate 1e10: the first step of window 1 is finite, its update is not; the loss of the
    next step, the first of window 2, is NaN. Window 1's results and checkpoint stay."""
    from sessrec.checkpoint import latest_good_checkpoint
    from sessrec.cli import main

    out = tmp_path / "run"
    code = main(["run", "--data-path", str(tiny_data), "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--max-steps", "1",
                 "--learning-rate", "1e10", "--final-time-window-index", "4", "--quiet", "-o", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err == ("sessrec: error: the training loss is nan in window 2 at step 1 of 1 (global step 2): lower the learning "
                   "rate (learning_rate 1e+10) or clip gradients (max_grad_norm), and check the inputs for extreme values\n")
    assert latest_good_checkpoint(out) == (out / "checkpoint-last", [])
    assert json.loads((out / "checkpoint-last" / "experiment.json").read_text())["trained_window"] == 1
    assert [w["index"] for w in json.loads((out / "results.json").read_text())["windows"]] == [2]


def test_single_click_sessions_are_left_out_of_training(caplog):
    """A batch of single clicks has nothing to predict (CLM) and, as in the original, no masked item
    (MLM/PLM/RTD): training on it gave a NaN loss that poisoned every weight."""
    from sessrec.config import ExperimentConfig
    from sessrec.data.loader import SessionTensors
    from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
    from sessrec.training import NeuralLearner

    schema = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)])
    items = torch.zeros(8, 4, dtype=torch.int64)
    items[:, 0] = torch.arange(1, 9)
    items[4:, 1] = torch.arange(9, 13)  # 4 single clicks, 4 sessions of 2 items
    for model, task in (("gpt2", "clm"), ("xlnet", "mlm")):
        cfg = ExperimentConfig.from_dict({"model_type": model, "task": task, "d_model": 16, "n_layer": 1, "n_head": 2,
                                          "max_steps": 8, "per_device_train_batch_size": 1, "quiet": True})
        learner = NeuralLearner(cfg, schema)
        fit = learner.fit_window(SessionTensors({"item": items}, "item"), 1)
        assert fit["train_steps"] == 8 and math.isfinite(fit["train_loss"])
        assert all(torch.isfinite(p).all() for p in learner.model.parameters())
        fit = learner.fit_window(SessionTensors({"item": items[:4]}, "item"), 2)
        assert fit["train_steps"] == 0 and "window 2: no session has 2 items or more; nothing to train" in caplog.text


def test_bf16_autocast_trains_and_scores_on_the_cpu(tiny_data, tmp_path):
    """--bf16 on the CPU: the matrix products of a training step and of the body in scoring run in bfloat16
    under autocast, the loss stays finite and close to float32's; the scoring head runs in float32 (bf16 logits
    tie many items with the target, each tie a rank lost under the pessimistic ranking)."""
    from sessrec.data.loader import iterate_batches, split_last_item
    from sessrec.learners import build_learner

    fits, products = {}, {}
    for bf16 in (False, True):
        cfg, schema, data = _window(tiny_data, tmp_path, bf16=bf16, device="cpu", max_steps=4)
        learner = build_learner(cfg, schema)
        assert learner.amp_dtype == (torch.bfloat16 if bf16 else None)
        dtypes = set()
        hooks = [m.register_forward_hook(lambda m, i, o, seen=dtypes: seen.add(o.dtype))
                 for m in learner.model.modules() if isinstance(m, torch.nn.Linear)]
        fits[bf16] = learner.fit_window(data, 1)
        products[bf16] = set(dtypes)
        prefix, _ = split_last_item(next(iterate_batches(data.min_length(2), 16)), data.item_key)
        dtypes.clear()
        head = [m.register_forward_hook(lambda m, i, o, seen=dtypes: seen.add(("head", o.dtype)))
                for m in learner.model.head.modules() if isinstance(m, torch.nn.Linear)]
        scores = learner.score(prefix)
        for h in hooks + head:
            h.remove()
        assert ("head", torch.float32) in dtypes and ("head", torch.bfloat16) not in dtypes
        assert scores.dtype == torch.float32 and bool(scores.isfinite().all())
        assert not torch.equal(scores, scores.to(torch.bfloat16).float())  # not bf16 values: no rounding ties
    assert products == {False: {torch.float32}, True: {torch.bfloat16}}
    assert math.isfinite(fits[True]["train_loss"]) and fits[True]["train_loss"] != fits[False]["train_loss"]
    assert fits[True]["train_loss"] == pytest.approx(fits[False]["train_loss"], rel=0.02)
