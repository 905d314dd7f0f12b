"""Baseline hyper-parameters: original names and defaults, the flag string forms, one-line errors."""

import pytest

from sessrec import errors
from sessrec.baselines.gru4rec import GRU4RecParams
from sessrec.baselines.params import parse_params
from sessrec.baselines.stan import STANParams, VSTANParams
from sessrec.baselines.vsknn import VSKNNParams
from sessrec.errors import SessrecError
from tests.baselines.conftest import learner


def test_defaults_are_the_original_constructor_defaults():
    v = parse_params(VSKNNParams, {}, "vsknn")
    assert (v.sample_size, v.sampling, v.weighting, v.weighting_score, v.remind, v.push_reminders, v.normalize,
            v.idf_weighting) == (1000, "recent", "div", "div", True, False, True, False)
    s = parse_params(STANParams, {}, "stan")
    assert (s.sample_size, s.lambda_spw, s.lambda_snh, s.lambda_inh, s.remind) == (5000, 1.02, 5.0, 2.05, True)
    t = parse_params(VSTANParams, {}, "vstan")
    assert (t.lambda_ipw, t.lambda_idf, t.similarity) == (1.02, 5.0, "cosine")
    g = parse_params(GRU4RecParams, {}, "gru4rec")
    assert (g.loss, g.final_act, g.layers, g.n_epochs, g.batch_size, g.learning_rate, g.n_sample, g.sample_alpha,
            g.constrained_embedding, g.bpreg) == ("bpr-max", "linear", [100], 10, 32, 0.1, 2048, 0.75, False, 1.0)


def test_string_forms_of_the_original_flags():
    # what `--vsknn-idf_weighting 10 --vsknn-remind True --gru4rec-layers 384` produce
    v = parse_params(VSKNNParams, {"k": "600", "sample_size": "2500", "idf_weighting": "10", "remind": "True",
                                   "push_reminders": "False", "weighting": "same"}, "vsknn")
    assert (v.k, v.sample_size, v.idf_weighting, v.remind, v.push_reminders) == (600, 2500, 10.0, True, False)
    assert parse_params(VSKNNParams, {"idf_weighting": "False"}, "vsknn").idf_weighting is False
    assert parse_params(VSKNNParams, {"idf_weighting": False}, "vsknn").idf_factor == 0.0
    t = parse_params(VSTANParams, {"lambda_idf": "False", "lambda_spw": "5.49", "lambda_snh": 80}, "vstan")
    assert (t.lambda_idf, t.lambda_spw, t.lambda_snh) == (False, 5.49, 80.0)
    g = parse_params(GRU4RecParams, {"layers": 384, "constrained_embedding": "True", "momentum": "0.0063",
                                     "batch_size": 192.0, "adapt": "None"}, "gru4rec")
    assert (g.layers, g.constrained_embedding, g.momentum, g.batch_size, g.adapt) == ([384], True, 0.0063, 192, None)
    assert parse_params(GRU4RecParams, {"layers": "100/50"}, "gru4rec").layers == [100, 50]
    assert parse_params(GRU4RecParams, {"n-epochs": 3}, "gru4rec").n_epochs == 3  # dashes work too
    # `--vsknn-remind 1` reaches the parameters as the int 1, which the original read as true; in a union with a
    # number (idf_weighting: bool | float) 1 stays the number
    assert [parse_params(VSKNNParams, {"remind": v}, "vsknn").remind for v in (1, 0)] == [True, False]
    assert parse_params(VSKNNParams, {"idf_weighting": 1}, "vsknn").idf_weighting == 1.0


@pytest.mark.parametrize("cls,values,message", [
    (VSKNNParams, {"kk": 5}, "baseline_params: unknown parameter 'kk' for vsknn (did you mean 'k'?)"),
    (VSKNNParams, {"k": "many"}, "baseline_params: vsknn parameter 'k' expects int, got 'many'"),
    (VSKNNParams, {"k": 2.5}, "expects int"),
    (VSKNNParams, {"k": 0}, "'k' must be >= 1"),
    (VSKNNParams, {"sampling": "oldest"}, "'sampling' must be one of recent, random"),
    (VSKNNParams, {"weighting": "cubic"}, "'weighting' must be one of linear, same, div, log, quadratic"),
    (VSKNNParams, {"extend": True}, "'extend'=True is not supported"),
    (VSKNNParams, {"last_n_days": 2}, "'last_n_days'=2 is not supported"),
    (VSKNNParams, {"remind": "maybe"}, "'remind' expects bool"),
    (STANParams, {"lambda_idf": 1}, "unknown parameter 'lambda_idf' for stan"),
    (VSKNNParams, {"k:50": None}, "unknown parameter 'k:50' for vsknn (YAML needs a space after the colon: {k: 50})"),
    (STANParams, {"lambda_inh": -1}, "'lambda_inh' must be > 0"),
    (STANParams, {"lambda_spw": True}, "'lambda_spw' must be a number, or False/None"),
    (GRU4RecParams, {"loss": "xe"}, "'loss' must be one of cross-entropy, bpr-max, top1-max, bpr, top1"),
    (GRU4RecParams, {"final_act": "softmax"}, "'final_act' must be linear, relu, tanh"),
    (GRU4RecParams, {"final_act": "elu-x"}, "'final_act' must be"),
    (GRU4RecParams, {"hidden_act": "relu"}, "'hidden_act'='relu' is not supported"),
    (GRU4RecParams, {"adapt": "adam"}, "'adapt'='adam' is not supported"),
    (GRU4RecParams, {"smoothing": 0.1}, "'smoothing' only works with loss cross-entropy"),
    (GRU4RecParams, {"dropout_p_hidden": 1.0}, "'dropout_p_hidden' must be in [0, 1)"),
    (GRU4RecParams, {"loss": "bpr-max", "batch_size": 1, "n_sample": 0},  # a NaN loss (QA helper-70)
     "loss bpr-max ranks each target against the mini-batch's other targets and n_sample extra items: with "
     "batch_size 1 and n_sample 0 there are none"),
    (GRU4RecParams, {"layers": "100/x"}, "'layers' expects list"),
])
def test_bad_parameters_are_one_line_errors(cls, values, message):
    with pytest.raises(SessrecError) as err:
        parse_params(cls, values, cls.__name__.removesuffix("Params").lower())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_weighting_time_needs_a_time_feature():
    with pytest.raises(SessrecError, match="'weighting_time'=True is not supported by sessrec .the schema has no time"):
        learner("vsknn", {"weighting_time": True}, [[1, 2]])


def test_ignored_combinations_are_said_out_loud_once(caplog, monkeypatch):
    monkeypatch.setattr(errors, "_warned", set())
    for _ in range(2):  # a model built again for each window (FT/SWT) says it once
        parse_params(GRU4RecParams, {"embedding": 384, "constrained_embedding": True}, "gru4rec")
    parse_params(GRU4RecParams, {"dropout_p_embed": 0.2}, "gru4rec")
    parse_params(VSKNNParams, {"similarity": "jaccard"}, "vsknn")
    text = caplog.text
    assert text.count("embedding=384 is ignored with constrained_embedding") == 1
    assert "dropout_p_embed is ignored with one-hot input" in text
    assert "similarity='jaccard' is ignored" in text


def test_parameters_of_a_baseline_that_takes_none_are_a_one_line_error():
    from sessrec.baselines import parse_baseline_params

    for values, said in (({"k": 3}, r"baseline 'pop' takes no baseline_params \(got k\)"), ({}, "takes no baseline_params$")):
        with pytest.raises(SessrecError, match=said):
            parse_baseline_params("pop", values)
