import re

import pytest

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(SessrecError, match=r"unknown key 'd_modle' \(did you mean 'd_model'\?\)"):
        ExperimentConfig.from_dict({"d_modle": 64})


def test_types_are_checked_and_coerced():
    cfg = ExperimentConfig.from_dict({"d_model": 32.0, "learning_rate": 1, "eval_on_test_set": "true", "model": "gpt2"})
    assert cfg.d_model == 32 and isinstance(cfg.d_model, int)
    assert cfg.learning_rate == 1.0 and cfg.eval_on_test_set is True and cfg.model_type == "gpt2"
    with pytest.raises(SessrecError, match="'d_model' expects int"):
        ExperimentConfig.from_dict({"d_model": "big"})
    with pytest.raises(SessrecError, match="'d_model' cannot be null"):
        ExperimentConfig.from_dict({"d_model": None})


def test_yaml_round_trip(tmp_path):
    cfg = ExperimentConfig.from_dict({"d_model": 48, "top_ks": [5, 10], "task": "clm"})
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert ExperimentConfig.from_yaml(p) == cfg
    p.write_text("d_model: 8\nfoo: 1\n")
    with pytest.raises(SessrecError, match=r"c.yaml: unknown key 'foo'"):
        ExperimentConfig.from_yaml(p)
    # a key given twice (a hand-edited best.yaml) is refused, not resolved to its last value
    p.write_text("d_model: 16\nn_layer: 1\nd_model: 32\nbaseline_params: {k: 1, k: 2}\n")
    with pytest.raises(SessrecError, match=r"c.yaml: the key 'd_model' is given twice \(lines 1 and 3\); keep one"):
        ExperimentConfig.from_yaml(p)
    p.write_text("baseline_params:\n  k: 1\n  k: 2\n")
    with pytest.raises(SessrecError, match=r"the key 'k' is given twice \(lines 2 and 3\)"):
        ExperimentConfig.from_yaml(p)


@pytest.mark.parametrize("values,match", [
    ({"task": "xyz"}, "task must be one of"),
    ({"start_time_window_index": 3, "final_time_window_index": 3}, "must be greater than"),
    ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
    ({"learning_rate_schedule": "exponential"}, "learning_rate_schedule must be one of"),
    ({"top_ks": [0]}, "top_ks"),
    ({"learning_rate": float("nan")}, r"learning_rate must be a finite number \(got nan\)"),
    ({"learning_rate": float("inf")}, r"learning_rate must be a finite number \(got inf\)"),
    ({"weight_decay": -1.0}, r"weight_decay must be >= 0"),
    ({"max_grad_norm": -1.0}, r"max_grad_norm must be >= 0"),
    ({"adam_beta2": 1.0}, r"adam_beta1 and adam_beta2 must be in \[0, 1\)"),
    ({"adam_epsilon": 0.0}, r"adam_epsilon must be > 0"),
    ({"seed": -1}, r"seed must be between 0 and 4294967295 \(got -1\)"),
    ({"seed": 2**70}, r"seed must be between 0 and 4294967295"),
])
def test_validation(values, match):
    with pytest.raises(SessrecError, match=match):
        ExperimentConfig.from_dict(values).validate()


def test_schedule_suffix_and_derived_values():
    cfg = ExperimentConfig.from_dict({"learning_rate_schedule": "cosine_with_warmup", "d_model": 32, "task": "clm"})
    assert cfg.validate().schedule == "cosine"
    assert cfg.item_dim == 32 and cfg.xlnet_attn_type == "uni"


def test_options_that_cannot_act_are_named():
    assert ExperimentConfig(task="plm").inert_options() == []
    assert ExperimentConfig(model_type="gru", task="clm", hidden_act="relu", n_head=3).inert_options() == [
        "n_head has no effect on the gru body (a Transformer option)",
        "hidden_act has no effect on the gru body (a Transformer option)"]
    assert ExperimentConfig(task="clm", plm_mask_input=True, mlm_probability=0.2).inert_options() == [
        "plm_mask_input has no effect with task clm (a PLM option)",
        "mlm_probability has no effect with task clm (an MLM/RTD option)"]
    assert ExperimentConfig(task="rtd", mlm_probability=0.2, rtd_tied_generator=True,
                            electra_generator_hidden_size=0.5).inert_options() == [
        "electra_generator_hidden_size has no effect with rtd_tied_generator (the generator is the discriminator's own "
        "sequence model)"]
    assert ExperimentConfig(task="mlm", rtd_discriminator_loss_weight=10.0).inert_options() == [
        "rtd_discriminator_loss_weight has no effect with task mlm (an RTD option)"]


def test_values_set_directly_are_converted_and_checked_like_a_file_s():
    """A notebook user builds the config in Python: "no" is False (a truthy string scored on test), numbers written as
    text or numpy numbers are numbers, and a wrong type is a one-line error before anything runs."""
    import numpy as np

    cfg = ExperimentConfig(eval_on_test_set="no", d_model="64", seed=np.int64(3), learning_rate=np.float32(0.5)).validate()
    assert (cfg.eval_on_test_set, cfg.d_model, cfg.seed, cfg.learning_rate) == (False, 64, 3, 0.5)
    assert type(cfg.d_model) is int and type(cfg.seed) is int
    for values, match in [({"d_model": 16.5}, "'d_model' expects int, got 16.5"), ({"d_model": None}, "cannot be null"),
                          ({"top_ks": 20}, "'top_ks' expects list"), ({"device": "gpu"}, "device must be auto, cpu")]:
        with pytest.raises(SessrecError, match=re.escape(match) if "'" in match else match):
            ExperimentConfig(**values).validate()


def test_constructor_names_the_field_a_misspelt_keyword_meant():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'd_modle' \(did you mean 'd_model'\?\)"):
        ExperimentConfig(d_modle=64)
    with pytest.raises(TypeError, match=r"'model' \(did you mean 'model_type'\?\)"):
        ExperimentConfig(model="gpt2")
    assert ExperimentConfig(d_model=32).d_model == 32
