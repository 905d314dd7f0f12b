"""Every published command line parses into the config its flags describe; defaults and reports are the original's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from t4r_paper_repro.arguments import cast_value, split_algorithm_params
from t4r_paper_repro.baselines_main import parse_args as parse_baseline
from t4r_paper_repro.transf_exp_main import parse_args as parse_transformer
from tests.t4r_paper_repro.paper import FEATURE_CONFIGS, argv_of, paper_commands

ROOT, OUT = Path("/data"), Path("/runs/x")
COMMANDS = paper_commands()

# flag -> config field holding the same value
SAME_VALUE = {
    "d_model", "n_layer", "n_head", "learning_rate", "dropout", "input_dropout", "weight_decay", "item_embedding_dim",
    "label_smoothing", "stochastic_shared_embeddings_replacement_prob", "item_id_embeddings_init_std",
    "other_embeddings_init_std", "mlm_probability", "plm_probability", "plm_max_span_length",
    "rtd_discriminator_loss_weight", "rtd_generator_loss_weight", "num_hidden_groups", "inner_group_num",
    "per_device_train_batch_size", "per_device_eval_batch_size", "num_train_epochs", "start_time_window_index",
    "final_time_window_index", "time_window_folder_pad_digits", "session_seq_length_max", "seed",
    "compute_metrics_each_n_steps", "logging_steps", "hidden_act", "model_type", "loss_type", "tf_out_activation",
    "inp_merge", "attn_type", "input_features_aggregation", "embedding_dim_from_cardinality_multiplier",
    "numeric_features_project_to_embedding_dim", "numeric_features_soft_one_hot_encoding_num_embeddings",
    "learning_rate_schedule", "training_time_window_size",
}
SET_TRUE = {"overwrite_output_dir", "dataloader_drop_last", "eval_on_last_item_seq_only", "mf_constrained_embeddings",
            "layer_norm_featurewise", "rtd_tied_generator", "rtd_sample_from_batch", "eval_on_test_set",
            "no_incremental_training"}
NOTED = {"validate_every", "save_steps", "similarity_type", "data_loader_engine", "workers_count",
         "eval_baseline_cpu_parallel", "logging_steps", "fp16", "dataloader_drop_last"}


def _parse(cmd):
    argv = cmd.rewritten(ROOT, FEATURE_CONFIGS, OUT)
    if cmd.is_baseline:
        return parse_baseline(argv)
    cfg, notes, _ = parse_transformer(argv)
    return cfg, notes


def _typed(current, text: str):
    return type(current)(text) if current is not None else text


def _pairs(argv: list[str]):
    """(flag, value or None) for each flag of a command line."""
    for i, tok in enumerate(argv):
        if tok.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            yield tok[2:], (None if nxt is None or nxt.startswith("--") else nxt)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{i:02d}-{c.dataset}-{c.title.split('|')[-1].strip()}" for i, c in enumerate(COMMANDS)])
def test_every_paper_command_parses_into_its_values(cmd):
    cfg, notes = _parse(cmd)
    noted = " ".join(notes)
    rewritten = cmd.rewritten(ROOT, FEATURE_CONFIGS, OUT)
    for flag, value in _pairs(cmd.argv):
        if flag in SAME_VALUE:
            said = [n for n in notes if n.startswith((f"--{flag} ", f"--{flag}:"))]
            if said and "no effect" in said[0]:  # said once by the script, and sessrec's default kept
                assert getattr(cfg, flag) == getattr(ExperimentConfig(), flag), flag
            else:
                assert getattr(cfg, flag) == _typed(getattr(cfg, flag), value), flag
        elif flag in SET_TRUE:
            assert getattr(cfg, flag) is True, flag
        elif flag in ("mlm", "plm", "rtd"):
            assert cfg.task == ("plm" if "--plm" in cmd.argv else "rtd" if "--rtd" in cmd.argv else "mlm")
        elif flag == "learning_rate_warmup_steps":
            assert cfg.warmup_steps == int(value)
        elif flag in ("feature_config", "data_path", "output_dir"):
            field = {"feature_config": "features_schema_path"}.get(flag, flag)
            assert getattr(cfg, field) == rewritten[cmd.argv.index(f"--{flag}") + 1]
            if flag == "feature_config":
                assert cfg.use_side_information_features == value.endswith("_all.yaml")
        elif "-" in flag:  # --<algorithm>-<param> value
            alg, param = flag.split("-", 1)
            assert alg == cfg.model_type and cfg.baseline_params[param] == cast_value(value)
            assert type(cfg.baseline_params[param]) is type(cast_value(value))
        elif flag not in ("do_train", "do_eval"):
            assert flag in NOTED, f"flag --{flag} is not checked"
        if flag in NOTED:
            assert f"--{flag}" in noted, flag
    if not cmd.is_baseline and not {"--mlm", "--plm", "--rtd"} & set(cmd.argv):
        assert cfg.task == "clm"
    assert len(notes) == len(set(notes))


def test_all_65_commands_are_read():
    assert len(COMMANDS) == 65
    assert sum(c.is_baseline for c in COMMANDS) == 20


def test_spot_checks_of_each_flag_family():
    plm = _parse(argv_of("XLNet (PLM)", "ecommerce"))[0]
    assert (plm.model_type, plm.task, plm.attn_type, plm.d_model, plm.n_layer, plm.n_head) == ("xlnet", "plm", "bi", 384, 4, 16)
    assert (plm.plm_probability, plm.plm_max_span_length, plm.learning_rate) == (0.5, 3, 0.0003387925502203725)
    assert (plm.learning_rate_schedule, plm.schedule, plm.warmup_steps, plm.num_train_epochs) == ("linear_with_warmup", "linear", 0, 10.0)
    assert (plm.mf_constrained_embeddings, plm.layer_norm_featurewise, plm.eval_on_last_item_seq_only) == (True, True, True)
    assert plm.label_smoothing == 0.7000000000000001 and plm.stochastic_shared_embeddings_replacement_prob == 0.02

    electra = _parse(argv_of("ELECTRA (RTD)", "ecommerce"))[0]
    assert (electra.model_type, electra.task, electra.rtd_tied_generator, electra.rtd_sample_from_batch) == ("electra", "rtd", True, True)
    assert (electra.mlm_probability, electra.rtd_discriminator_loss_weight, electra.rtd_generator_loss_weight) == (0.4, 1.0, 1.0)

    xlnet_rtd = _parse(argv_of("XLNET (RTD)", "ecommerce"))[0]
    assert (xlnet_rtd.task, xlnet_rtd.seed, xlnet_rtd.dataloader_drop_last) == ("rtd", 101, False)

    albert = _parse(argv_of("BERT (MLM)", "yoochoose"))[0]
    assert (albert.model_type, albert.task, albert.num_hidden_groups, albert.inner_group_num) == ("albert", "mlm", -1, 1)

    sohe = _parse(argv_of("CONCAT + SOFT ONE-HOT ENCODING", "g1_news"))[0]
    assert sohe.use_side_information_features and sohe.features_schema_path.endswith("news_g1/session_based_features_all.yaml")
    assert (sohe.numeric_features_project_to_embedding_dim, sohe.numeric_features_soft_one_hot_encoding_num_embeddings) == (10, 20)
    assert (sohe.embedding_dim_from_cardinality_multiplier, sohe.other_embeddings_init_std) == (1.0, 0.08)
    elementwise = _parse(argv_of("ELEMENTWISE", "adressa"))[0]
    assert elementwise.input_features_aggregation == "elementwise_sum_multiply_item_embedding"

    cfg = _parse(argv_of("GRU", "adressa"))[0]
    assert (cfg.model_type, cfg.task, cfg.d_model, cfg.item_embedding_dim, cfg.n_head) == ("gru", "clm", 320, 384, 4)  # n_head: default

    gpt2 = _parse(argv_of("GPT-2 (CLM)", "g1_news"))[0]
    assert (gpt2.model_type, gpt2.task, gpt2.final_time_window_index, gpt2.per_device_eval_batch_size) == ("gpt2", "clm", 380, 512)
    assert not gpt2.use_side_information_features and gpt2.fp16 is False  # no CUDA here


def test_baseline_commands_and_their_parameters():
    vsknn = _parse(argv_of("V-SKNN", "ecommerce"))[0]
    assert vsknn.model_type == "vsknn"
    assert vsknn.baseline_params == {"k": 600, "sample_size": 2500, "weighting": "same", "weighting_score": "linear",
                                     "idf_weighting": 10, "remind": True, "push_reminders": True}
    ft = _parse(argv_of("GRU4Rec (FT)", "ecommerce"))[0]
    assert (ft.no_incremental_training, ft.training_time_window_size) == (True, 0)
    assert ft.baseline_params["loss"] == "bpr-max" and ft.baseline_params["learning_rate"] == 0.02987583000164429
    assert ft.baseline_params["constrained_embedding"] is True and ft.baseline_params["layers"] == 384
    swt = _parse(argv_of("GRU4Rec (SWT)", "ecommerce"))[0]
    assert (swt.no_incremental_training, swt.training_time_window_size) == (True, 6)
    g1_ft = _parse(argv_of("GRU4Rec (FT)", "g1_news"))[0]
    assert g1_ft.final_time_window_index == 190  # the one command that stops at 190
    vstan = _parse(argv_of("VSTAN", "adressa"))[0]
    assert vstan.baseline_params["lambda_idf"] is False


def test_original_defaults_where_no_value_is_given():
    cfg, notes, check = parse_transformer(["--output_dir", "o", "--do_train", "--do_eval"])
    assert (cfg.model_type, cfg.task, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.dropout) == ("gpt2", "clm", 256, 12, 4, 0.1)
    assert (cfg.learning_rate, cfg.num_train_epochs, cfg.per_device_train_batch_size, cfg.per_device_eval_batch_size) == (5e-5, 3.0, 8, 8)
    # an objective's options keep the original's defaults where they act; under CLM they are sessrec's (unwarned)
    assert not cfg.inert_options()
    for task, field, value in [("mlm", "mlm_probability", 0.15), ("rtd", "mlm_probability", 0.15),
                               ("plm", "plm_probability", 0.25), ("plm", "plm_max_span_length", 5)]:
        assert getattr(parse_transformer(["--output_dir", "o", f"--{task}"])[0], field) == value, (task, field)
    clm, said, _ = parse_transformer(["--output_dir", "o", "--mlm_probability", "0.4"])  # given: said once, by the script
    assert "--mlm_probability 0.4: no effect with task clm (an MLM/RTD option)" in said and not clm.inert_options()
    gru, said, _ = parse_transformer(["--output_dir", "o", "--model_type", "gru", "--hidden_act", "gelu", "--n_head", "2"])
    assert {"--hidden_act gelu: no effect on the gru body (a Transformer option)",
            "--n_head 2: no effect on the gru body (a Transformer option)"} <= set(said) and not gru.inert_options()
    assert (cfg.item_id_embeddings_init_std, cfg.other_embeddings_init_std, cfg.mf_constrained_embeddings) == (0.5, 0.05, False)
    assert (cfg.rtd_discriminator_loss_weight, cfg.eval_on_last_item_seq_only, cfg.item_embedding_dim) == (50.0, False, None)
    assert (cfg.logging_steps, cfg.seed, cfg.eval_steps_on_train_set, cfg.learning_rate_schedule) == (500, 42, 20, "linear")
    assert (cfg.session_seq_length_max, cfg.report_to, cfg.attn_type, cfg.warmup_steps) == (20, "all", None, 0)
    assert notes == [] and check is True


@pytest.mark.parametrize("extra,field,expected", [
    (["--mlm", "--plm"], "task", "plm"),
    (["--mlm", "--rtd"], "task", "rtd"),
    (["--mlm", "True", "--mlm", "--mlm"], "task", "mlm"),
    (["--mlm", "false"], "task", "clm"),
    (["--max_sequence_length", "30"], "session_seq_length_max", 30),
    (["--max_sequence_length", "30", "--session_seq_length_max", "12"], "session_seq_length_max", 12),
    (["--lr_scheduler_type", "cosine"], "learning_rate_schedule", "cosine"),
    (["--lr_scheduler_type", "cosine", "--learning_rate_schedule", "constant_with_warmup"], "learning_rate_schedule", "constant_with_warmup"),
    (["--learning_rate_warmup_steps", "7"], "warmup_steps", 7),
    (["--warmup_steps", "7"], "warmup_steps", 7),
    (["--no_cuda"], "device", "cpu"),
    (["--ddp_timeout", "60"], "ddp_timeout", 60),  # HuggingFace's TrainingArguments name (the lost-contact line names it)
    (["--report_to", "tensorboard", "wandb"], "report_to", "tensorboard,wandb"),
    (["--disable_tqdm"], "quiet", True),
    (["--layer_norm_all_features"], "layer_norm_all_features", True),
    (["--rtd", "--electra_generator_hidden_size", "0.5"], "electra_generator_hidden_size", 0.5),
    (["--use_side_information_features"], "use_side_information_features", True),
    (["--d_model", "64", "--d_model", "32"], "d_model", 32),  # the last value wins: how tests shrink a command
    # the post-2021 losses' options (README; they were unrecognized arguments here while --loss_type took the losses)
    (["--loss_type", "gbce", "--gbce_t", "0.5"], "gbce_t", 0.5),
    (["--loss_type", "gbce", "--num_negatives", "64"], "num_negatives", 64),
    (["--loss_type", "bpr_max", "--bpr_max_reg", "0.5"], "bpr_max_reg", 0.5),
])
def test_translations(extra, field, expected):
    cfg, _, _ = parse_transformer(["--output_dir", "o", "--do_train", "--do_eval", *extra])
    assert getattr(cfg, field) == expected


def test_feature_config_decides_the_inputs():
    yaml_dir = FEATURE_CONFIGS / "ecommerce_rees46"
    itemid, _, _ = parse_transformer(["--output_dir", "o", "--feature_config", str(yaml_dir / "session_based_features_itemid.yaml")])
    everything, _, _ = parse_transformer(["--output_dir", "o", "--feature_config", str(yaml_dir / "session_based_features_all.yaml")])
    assert not itemid.use_side_information_features and everything.use_side_information_features
    with pytest.raises(SessrecError, match="not both"):
        parse_transformer(["--output_dir", "o", "--feature_config", "a.yaml", "--features_schema_path", "b.pbtxt"])
    # a schema file given as --feature_config: its features are the inputs too, and the script says so
    pbtxt = str(Path(__file__).parents[1] / "data" / "schemas" / "rees46_schema.pbtxt")
    cfg, notes, _ = parse_transformer(["--output_dir", "o", "--feature_config", pbtxt])
    assert cfg.use_side_information_features
    assert any(n.startswith(f"--feature_config {pbtxt}: a schema file, not the original YAML feature map") for n in notes)
    cfg, notes, _ = parse_transformer(["--output_dir", "o", "--features_schema_path", pbtxt])
    assert not cfg.use_side_information_features and not any("--feature" in n for n in notes)


def test_reports_each_inapplicable_argument_once():
    _, notes, _ = parse_transformer(["--output_dir", "o", "--fp16", "--data_loader_engine", "nvtabular", "--validate_every", "10",
                                     "--similarity_type", "concat_mlp", "--save_steps", "0", "--summary_type", "last",
                                     "--fp16", "--eval_accumulation_steps", "4", "--log_predictions"])
    by_flag = {n.split(":")[0]: n for n in notes}
    assert by_flag["--fp16"] == "--fp16: no CUDA device here, training in float32"
    assert "sessrec's own parquet loader" in by_flag["--data_loader_engine nvtabular"]
    assert "no effect" in by_flag["--validate_every 10"] and "no effect" in by_flag["--similarity_type concat_mlp"]
    assert "checkpoints" in by_flag["--save_steps 0"] and "no effect" in by_flag["--eval_accumulation_steps 4"]
    assert "not available" in by_flag["--log_predictions"]
    assert {"--do_train not given", "--do_eval not given"} <= {n.split(":")[0] for n in notes}
    assert len(notes) == len(set(notes))


@pytest.mark.parametrize("argv,message", [
    (["--d_modle", "8"], "unrecognized argument --d_modle (did you mean --d_model?)"),
    (["--vsknn-k", "600"], "unrecognized argument --vsknn-k"),
    (["--eval_baseline_cpu_parallel"], "unrecognized argument --eval_baseline_cpu_parallel"),
    (["--learning_rate", "fast"], "invalid float value: 'fast'"),
    (["--mlm", "maybe"], "boolean value expected"),
    (["--do_train", "False"], "--do_train False: this script always trains"),
    (["--negative_sampling"], "--negative_sampling True: negative sampling for pairwise losses is not available"),
    (["--session_aware"], "session-aware mode"),
    (["--local_rank", "0"], "--local_rank 0: only a distributed launcher passes it; start the command with torchrun"),
    (["--gradient_accumulation_steps", "4"], "gradient accumulation is not available"),
    (["--learning_rate_warmup_steps", "3", "--warmup_steps", "5"], "disagree"),
    (["--lr_scheduler_type", "polynomial"], "--lr_scheduler_type polynomial: expected one of"),
    (["--loss_type", "bpr_max_reg"], "loss_type must be one of cross_entropy"),
    (["--data_loader_engine", "spark"], "--data_loader_engine spark: expected one of"),
    (["--learning_rat", "0.1"], "did you mean --learning_rate?"),  # no prefix matching: abbreviations are errors
    (["--d_model", "8", "\r"], "unrecognized argument '\\r': the command has Windows line endings (CRLF)"),
    (["--d_model", "8", "--n_layer\r", "2"], "unrecognized argument '--n_layer\\r': the command has Windows line"),
    (["--d_model", "8", " "], "unrecognized argument ' ': is there a space after a backslash"),
])
def test_bad_command_lines_are_one_line_errors(argv, message):
    with pytest.raises(SessrecError) as e:
        parse_transformer(["--output_dir", "o", *argv])
    assert message in str(e.value)


def test_output_dir_is_required():
    with pytest.raises(SessrecError, match="--output_dir"):
        parse_transformer(["--do_train"])


def test_algorithm_parameters_are_cast_as_the_original():
    rest, params = split_algorithm_params(["--model_type", "vsknn", "--vsknn-k", "600", "--vsknn-remind", "True",
                                           "--vsknn-extend", "--vsknn-lambda", "1e-05", "--vsknn-weighting", "same",
                                           "--vsknn-neg", "-3", "--seed", "1"])
    assert rest == ["--model_type", "vsknn", "--seed", "1"]
    assert params == {"vsknn-k": ("vsknn", 600), "vsknn-remind": ("vsknn", True), "vsknn-extend": ("vsknn", True),
                      "vsknn-lambda": ("vsknn", 1e-05), "vsknn-weighting": ("vsknn", "same"), "vsknn-neg": ("vsknn", -3)}
    assert [cast_value(v) for v in ("FALSE", "10", "2.5", "bpr-max")] == [False, 10, 2.5, "bpr-max"]


def test_logging_steps_is_said_to_have_no_effect_on_the_knn_baselines():
    """The note said the training loss is recorded every --logging_steps steps, also for V-SkNN/STAN/VSTAN, which have
    none (QA helper-52); GRU4Rec's loss is recorded."""
    _, notes = parse_baseline(["--output_dir", "o", "--model_type", "stan", "--logging_steps", "20"])
    assert "--logging_steps 20: no effect: the kNN baselines train no loss" in notes
    _, notes = parse_baseline(["--output_dir", "o", "--model_type", "gru4rec", "--logging_steps", "20"])
    assert any(n.startswith("--logging_steps 20: the training loss is recorded every") for n in notes)


def test_baseline_parameters_must_match_the_model_type():
    with pytest.raises(SessrecError, match="a parameter of 'stan', but --model_type is 'vsknn'"):
        parse_baseline(["--output_dir", "o", "--model_type", "vsknn", "--stan-k", "5"])
    cfg, notes = parse_baseline(["--output_dir", "o", "--model_type", "pop", "--d_model", "64", "--fp16"])
    assert cfg.d_model == 256 and not cfg.fp16  # neural-model options are reported, not applied
    assert "no effect on the baselines (options of the neural models): --d_model --fp16" in notes


def test_compat_selects_the_released_library_and_notes_the_unused_activation():
    cmd = next(c for c in COMMANDS if not c.is_baseline and "--model_type gpt2" in " ".join(c.argv))
    argv = cmd.rewritten(ROOT, FEATURE_CONFIGS, OUT)
    cfg, notes, _ = parse_transformer(argv)
    assert cfg.compat == "recsys2021" and not any("--compat" in n for n in notes)
    cfg, notes, _ = parse_transformer([*argv, "--compat", "t4r-23.12"])
    assert cfg.t4r_library
    assert any(n.startswith("--tf_out_activation tanh: no effect with --compat t4r-23.12") for n in notes)
    with pytest.raises(SessrecError, match="compat must be one of"):
        parse_transformer([*argv, "--compat", "t4r"])


def test_errors_name_the_scripts_own_flags(tmp_path, capsys):
    """sessrec's messages name its command line's flags (--overwrite-output-dir); the paper scripts' name theirs, but
    for a quoted sessrec command. A dashed argument of the baselines script is a misspelt one, not an algorithm's."""
    from t4r_paper_repro import script_flags
    from t4r_paper_repro.transf_exp_main import main

    names = {"overwrite_output_dir", "output_dir"}
    assert script_flags("pass --overwrite-output-dir; continue with `sessrec run --resume --output-dir o` "
                        "(--keep-checkpoints N)", names) == (
        "pass --overwrite_output_dir; continue with `sessrec run --resume --output-dir o` (--keep-checkpoints N)")
    (tmp_path / "mine.txt").write_text("x")
    assert main(["--output_dir", str(tmp_path), "--do_train", "--do_eval", "--num_train_epochs", "1"]) == 2
    assert f"output folder {tmp_path} is not empty; pass --overwrite_output_dir" in capsys.readouterr().err
    with pytest.raises(SessrecError, match=r"unrecognized argument --data-path \(did you mean --data_path\?\)"):
        parse_baseline(["--output_dir", "o", "--model_type", "vsknn", "--data-path", "x"])


def test_options_another_option_overrides_are_said_once():
    """The original's priorities are kept (plm over rtd over mlm, --learning_rate_schedule over --lr_scheduler_type,
    --session_seq_length_max over --max_sequence_length, the YAML's features over --use_side_information_features),
    but the overridden option is said (QA helper-41: each was silent); so is an item-id-only run's
    --other_embeddings_init_std, which is then not applied (and not warned again by the run)."""
    base = ["--output_dir", "o"]
    cfg, notes, _ = parse_transformer([*base, "--plm", "--rtd", "--mlm"])
    assert cfg.task == "plm" and {"--rtd: no effect with --plm (one objective trains; the priority is plm, rtd, mlm)",
                                  "--mlm: no effect with --plm (one objective trains; the priority is plm, rtd, mlm)"} <= set(notes)
    cfg, notes, _ = parse_transformer([*base, "--rtd", "--mlm"])  # the paper's RTD lines: not "one objective trains"
    assert cfg.task == "rtd" and "--mlm: implied by --rtd (RTD trains an MLM generator beside its discriminator)" in notes
    cfg, notes, _ = parse_transformer([*base, "--learning_rate_schedule", "constant", "--lr_scheduler_type", "cosine"])
    assert cfg.schedule == "constant" and \
        "--lr_scheduler_type cosine: no effect, --learning_rate_schedule constant wins (as in the original)" in notes
    cfg, notes, _ = parse_transformer([*base, "--session_seq_length_max", "10", "--max_sequence_length", "5"])
    assert cfg.session_seq_length_max == 10 and "--max_sequence_length 5: no effect, --session_seq_length_max 10 wins" in notes
    yaml_all = next(FEATURE_CONFIGS.glob("ecommerce_rees46/*_all.yaml"))
    cfg, notes, _ = parse_transformer([*base, "--feature_config", str(yaml_all), "--use_side_information_features", "False"])
    assert cfg.use_side_information_features and any(
        n.startswith(f"--use_side_information_features False: no effect with --feature_config {yaml_all}") for n in notes)
    cfg, notes, _ = parse_transformer([*base, "--other_embeddings_init_std", "0.095"])
    assert "--other_embeddings_init_std 0.095: no effect without side information features (use_side_information_features " \
           "is off)" in notes and not cfg.inert_options()
    assert not [n for n in parse_transformer(base)[1] if "no effect" in n]  # nothing said of the defaults
