"""Search spaces: the paper's per family, and space files checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.tuning.space import (
    Param,
    SearchSpace,
    apply,
    default_space,
    flat_values,
    load_space,
    paper_fixed,
)


def cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict(kw)


def test_default_space_follows_the_appendix_per_family():
    mlm = default_space(cfg(model_type="xlnet", task="mlm"))
    assert {"d_model", "n_layer", "n_head", "learning_rate", "mlm_probability",
            "stochastic_shared_embeddings_replacement_prob"} <= set(mlm.names)
    assert "plm_probability" not in mlm.names and "other_embeddings_init_std" not in mlm.names
    plm = default_space(cfg(model_type="xlnet", task="plm"))
    assert {"plm_probability", "plm_max_span_length"} <= set(plm.names) and "mlm_probability" not in plm.names
    rtd = default_space(cfg(model_type="electra", task="rtd"))
    weights = next(p for p in rtd.params if p.name == "rtd_discriminator_loss_weight")
    assert weights.choices == (1, 10, 20, 30, 40, 50)
    assert "n_head" not in default_space(cfg(model_type="gru", task="clm")).names
    side = default_space(cfg(model_type="xlnet", task="mlm", use_side_information_features=True,
                             numeric_features_project_to_embedding_dim=10,
                             numeric_features_soft_one_hot_encoding_num_embeddings=10))
    assert {"other_embeddings_init_std", "embedding_dim_from_cardinality_multiplier",
            "numeric_features_soft_one_hot_encoding_num_embeddings"} <= set(side.names)
    d_model = next(p for p in mlm.params if p.name == "d_model")
    assert (d_model.low, d_model.high, d_model.step) == (64, 448, 64)


def test_stan_lambdas_are_multiples_of_the_mean_session_length():
    space = default_space(cfg(model_type="stan"), mean_session_length=4.0)
    spw = next(p for p in space.params if p.name == "baseline_params.lambda_spw")
    assert spw.choices == (1e-5, 0.5, 1.0, 2.0, 4.0, 8.0)
    with pytest.raises(SessrecError, match="pop has no hyper-parameters"):
        default_space(cfg(model_type="pop"))


def test_paper_fixed_settings():
    assert paper_fixed(cfg(model_type="xlnet", task="mlm"))["num_train_epochs"] == 10
    assert paper_fixed(cfg(model_type="electra", task="rtd"))["rtd_tied_generator"] is True
    assert paper_fixed(cfg(model_type="albert"))["num_hidden_groups"] == -1
    assert paper_fixed(cfg(model_type="vsknn")) == {}
    assert paper_fixed(cfg(model_type="gru4rec")) == {"no_incremental_training": True}  # the paper's FT mode


def test_snap_moves_values_onto_the_grid():
    assert Param("d", "int", 64, 448, 64).snap(100) == 128
    assert Param("d", "int", 64, 448, 64).snap(1000) == 448
    assert Param("p", "discrete_uniform", 0.0, 0.5, 0.1).snap(0.23) == 0.2
    assert Param("lr", "log_uniform", 1e-4, 1e-2).snap(0.5) == 1e-2
    assert Param("h", "categorical", choices=(1, 2, 4)).snap(3.4) == 4  # the nearest number
    assert Param("h", "categorical", choices=(1, 2, 4)).snap("x") is None
    assert Param("w", "categorical", choices=("same", "div")).snap(2) is None
    assert Param("r", "categorical", choices=(True, False)).snap(False) is False
    assert Param("i", "categorical", choices=(False, 1, 5)).snap(4) == 5


def test_apply_sets_config_and_baseline_parameters():
    base = cfg(model_type="vsknn", baseline_params={"k": 100})
    out = apply(base, {"baseline_params.sample_size": 500, "seed": 3})
    assert out.baseline_params == {"k": 100, "sample_size": 500} and out.seed == 3
    assert base.baseline_params == {"k": 100} and base.seed == 42  # the base is not changed
    assert flat_values(out)["baseline_params.k"] == 100


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def test_space_file_round_trip(tmp_path):
    space = default_space(cfg(model_type="gpt2", task="clm"))
    loaded = load_space(write(tmp_path, space.to_yaml()), cfg(model_type="gpt2", task="clm"))
    assert loaded.params == space.params


def test_space_file_accepts_the_appendix_spellings(tmp_path):
    space = load_space(write(tmp_path, "d_model: {type: int_uniform, low: 64, high: 128, step: 64}\n"
                                       "dropout: {type: discrete, low: 0, high: 0.2, step: 0.1}\n"
                                       "learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"), cfg())
    assert [p.kind for p in space.params] == ["int", "discrete_uniform", "log_uniform"]


@pytest.mark.parametrize("text, message", [
    ("learnign_rate: {type: log_uniform, low: 1.0e-4, high: 1.0e-2}\n", "'learnign_rate' is not a config key (did you mean 'learning_rate'?)"),
    ("dropout: {type: discrete_uniform, low: 0.5, high: 0.1, step: 0.1}\n", "'dropout': empty range"),
    ("learning_rate: {type: log_uniform, low: 0, high: 0.1}\n", "log_uniform needs low > 0"),
    ("dropout: {type: gaussian, low: 0, high: 0.1}\n", "unknown type 'gaussian'"),
    ("n_head: {type: categorical, choices: []}\n", "non-empty list 'choices'"),
    ("dropout: {type: discrete_uniform, low: 0, high: 1.5, step: 0.5}\n", "value 1.5 is not valid (dropout must be in [0, 1)"),
    ("d_model: {type: discrete_uniform, low: 16.5, high: 64, step: 0.5}\n", "value 16.5 is not valid"),
    ("baseline_params.k: {type: int, low: 10, high: 20}\n", "is a baseline parameter, but model_type is xlnet"),
    ("data_path: {type: categorical, choices: [a, b]}\n", "cannot be tuned: it selects the data"),
    # trials scored on other predictions (sessions cut elsewhere, other batches) cannot be compared
    ("session_seq_length_max: {type: int, low: 10, high: 20}\n", "cannot be tuned: it changes what is evaluated"),
    ("compute_metrics_each_n_steps: {type: int, low: 1, high: 2}\n", "cannot be tuned: it changes what is evaluated"),
    ("dropout: 0.1\n", "expected a mapping with 'type'"),
    # a grid that does not reach high: Optuna narrowed it with a warning at every trial
    ("dropout: {type: discrete_uniform, low: 0.0, high: 0.5, step: 0.7}\n",
     "'dropout': high 0.5 is not low 0 plus a multiple of step 0.7 (the grid would end at 0)"),
    ("dropout: {type: discrete_uniform, low: 0.0, high: 0.5, step: 0.3}\n", "(the grid would end at 0.3)"),
    ("n_layer: {type: int, low: 1, high: 4, step: 5}\n", "high 4 is not low 1 plus a multiple of step 5"),
    ("hidden_act: {type: categorical, choices: [relu, nonsense]}\n",
     "'hidden_act': value 'nonsense' is not valid (unknown activation 'nonsense'"),
    ("{}\n", "the search space is empty"),
    # n_layer fits any head count: tuned beside n_head, it no longer leaves n_head unchecked
    ("n_layer: {type: int, low: 1, high: 2}\nn_head: {type: categorical, choices: [1, 3, 4]}\n",
     "'n_head': value 3 is not valid"),
])
def test_bad_space_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(SessrecError) as e:
        load_space(write(tmp_path, text), cfg())
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(tmp_path / "space.yaml") in str(e.value)


def test_grids_of_decimal_steps_are_accepted(tmp_path):
    space = load_space(write(tmp_path, "label_smoothing: {type: discrete_uniform, low: 0.0, high: 0.9, step: 0.1}\n"
                                       "item_id_embeddings_init_std: {type: discrete_uniform, low: 0.01, high: 0.15, "
                                       "step: 0.02}\n"), cfg())
    assert [p.high for p in space.params] == [0.9, 0.15]


def test_baseline_space_values_are_checked(tmp_path):
    with pytest.raises(SessrecError, match="weighting"):
        load_space(write(tmp_path, "baseline_params.weighting: {type: categorical, choices: [same, cubic]}\n"),
                   cfg(model_type="vsknn"))
    with pytest.raises(SessrecError, match="unknown parameter 'kk'"):
        load_space(write(tmp_path, "baseline_params.kk: {type: int, low: 10, high: 20}\n"), cfg(model_type="vsknn"))


def test_a_key_listed_twice_is_an_error():
    with pytest.raises(SessrecError, match="listed twice"):
        SearchSpace([Param("d_model", "int", 64, 128, 64), Param("d_model", "int", 64, 128, 64)])


def test_recent_bodies_get_the_transformer_space_and_their_loss_parameters():
    for model in ("sasrec", "hstu"):
        space = default_space(cfg(model_type=model, task="clm"))
        assert {"d_model", "n_layer", "n_head", "dropout", "learning_rate", "label_smoothing"} <= set(space.names)
        assert not {"gbce_t", "num_negatives", "bpr_max_reg"} & set(space.names)
    gbce = default_space(cfg(model_type="sasrec", task="clm", loss_type="gbce"))
    assert {"gbce_t", "num_negatives", "n_head"} <= set(gbce.names)
    assert "label_smoothing" not in gbce.names and "bpr_max_reg" not in gbce.names
    t = next(p for p in gbce.params if p.name == "gbce_t")
    assert (t.low, t.high) == (0.0, 1.0)
    bpr = default_space(cfg(model_type="gpt2", task="clm", loss_type="bpr_max"))
    assert {"bpr_max_reg", "num_negatives"} <= set(bpr.names) and "gbce_t" not in bpr.names
    # every point of the space is a valid config
    for space, base in ((gbce, {"model_type": "sasrec", "task": "clm", "loss_type": "gbce"}),
                        (bpr, {"model_type": "gpt2", "task": "clm", "loss_type": "bpr_max"})):
        for p in space.params:
            value = p.choices[-1] if p.kind == "categorical" else p.high
            ExperimentConfig.from_dict({**base, p.name: value}).validate()


def test_grid_values_are_kept_as_the_trial_used_them():
    space = SearchSpace([Param("dropout", "discrete_uniform", 0.0, 0.5, 0.1), Param("learning_rate", "log_uniform", 1e-4, 1e-2)])
    used = space.used({"dropout": 0.1 * 3, "learning_rate": 0.1 * 3 / 100})
    assert used == {"dropout": 0.3, "learning_rate": 0.1 * 3 / 100}  # a continuous value is left alone



def test_a_fixed_d_model_keeps_the_head_counts_that_divide_it(tiny_data, capsys):
    """--d-model 100 left n_head 8 and 16 in the paper's space: every trial that drew one failed."""
    from sessrec.cli import main

    space = default_space(cfg()).without({"d_model"}).with_heads_dividing(100)
    assert next(p for p in space.params if p.name == "n_head").choices == (1, 2, 4)
    assert main(["tune", "--data-path", str(tiny_data), "--model", "gpt2", "--task", "clm", "--d-model", "100",
                 "--print-space"]) == 0
    assert "n_head:\n  type: categorical\n  choices:\n  - 1\n  - 2\n  - 4\n" in capsys.readouterr().out


def test_the_paper_preset_of_each_group():
    from sessrec.tuning.study import paper_preset

    side = {"use_side_information_features": True}
    assert [paper_preset(cfg(**kw)) for kw in (
        {"model_type": "xlnet", "task": "mlm"}, {"model_type": "gru4rec"},
        {"model_type": "gru4rec", "no_incremental_training": True, "training_time_window_size": 6},
        {"model_type": "xlnet", "task": "mlm", **side},
        {"model_type": "xlnet", "task": "mlm", **side, "input_features_aggregation": "elementwise_sum_multiply_item_embedding"},
        {"model_type": "xlnet", "task": "mlm", **side, "numeric_features_soft_one_hot_encoding_num_embeddings": 5,
         "numeric_features_project_to_embedding_dim": 20})] == [
        "rees46/xlnet-mlm", "rees46/gru4rec-ft", "rees46/gru4rec-swt", "rees46/xlnet-mlm-concat",
        "rees46/xlnet-mlm-elementwise", "rees46/xlnet-mlm-concat-sohe"]
