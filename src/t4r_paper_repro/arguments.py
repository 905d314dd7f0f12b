"""The paper scripts' arguments, what each becomes in :class:`ExperimentConfig`, and how each is reported.

One table (:data:`ARGS`) lists every argument of the released example ``transf_exp_main``
(``DataArguments``, ``ModelArguments``, ``TrainingArguments`` with the HuggingFace fields the
paper used) and of the original ``hf4rec.recsys_main`` scripts, with **the original default**.
Each argument either fills a config field (``field``), is translated by :func:`to_config`
(objective flags, schema, schedule, warm-up, device, ...), prints a one-line note on stderr when
given (``note``: what it does here, or that it has no effect), or is refused when set to anything
but its default (``unsupported``). Anything else on the command line is an error, as in the
original. Booleans parse like HuggingFace's: ``--flag``, ``--flag True``, ``--flag false``;
repeating a flag is fine.
"""

from __future__ import annotations

import argparse
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessrec.config import ExperimentConfig, field_help, inert_with_task
from sessrec.errors import SessrecError
from sessrec.launch import launched, local_rank

# families, in the order of the README table
DATA, MODEL, OBJECTIVE, SIDE, TRAINING, OUTPUT, BASELINE = "data", "model", "objective", "side information", "training", "outputs and logging", "baselines"


@dataclass(frozen=True)
class Arg:
    name: str
    type: type
    default: Any  # the original script's default
    family: str
    field: str | None = None  # the ExperimentConfig field it fills (None: translated in to_config, or a note)
    note: str | None = None  # printed once on stderr when the argument is given
    unsupported: str | None = None  # a value other than the default is an error, for this reason
    nargs: str | None = None
    help: str = ""  # for the arguments translated by to_config (the others show their field's help)
    aliases: tuple[str, ...] = ()  # other spellings of the flag, without the leading --

    def said(self, value: Any, what: str) -> str:
        """A note on the flag as given: ``--name value: what`` (a boolean flag without its value)."""
        return f"--{self.name}{'' if self.type is bool else f' {value}'}: {what}"


def _a(name: str, type_: type, default: Any, family: str, field: str | None = "", **kw: Any) -> Arg:
    return Arg(name, type_, default, family, name if field == "" else field, **kw)


_NO_LOADER = "no effect: sessrec loads each window's parquet into tensors itself"
_NO_LOSS = ("vsknn", "stan", "vstan")  # --model_type values without a training loss to log
_NO_EFFECT_ORIGINAL = "no effect (the original scripts never used it either)"

ARGS: list[Arg] = [
    # ---- data (DataArguments; loader options of the original hf4rec scripts) ------------------------
    _a("data_path", str, None, DATA),
    _a("features_schema_path", str, None, DATA, None, help="schema.pbtxt of the released example (item id only unless --use_side_information_features)"),
    _a("feature_config", str, None, DATA, None, help="the original YAML feature map: its features are the model inputs"),
    _a("start_time_window_index", int, 1, DATA),
    _a("final_time_window_index", int, None, DATA),
    _a("time_window_folder_pad_digits", int, 4, DATA),
    _a("no_incremental_training", bool, False, DATA),
    _a("training_time_window_size", int, 0, DATA),
    _a("use_side_information_features", bool, False, SIDE, None, help="with --features_schema_path: feed every tagged feature, not only the item id"),
    _a("session_seq_length_max", int, None, DATA, None, help="sessions are padded/trimmed to this length (20 when neither is given)"),
    _a("max_sequence_length", int, None, DATA, None, help="the same as --session_seq_length_max, which wins"),
    _a("eval_on_test_set", bool, False, DATA),
    _a("data_loader_engine", str, "merlin", DATA, None, help="accepted for compatibility: sessrec uses its own loader"),
    _a("workers_count", int, 8, DATA, None, note=_NO_LOADER + " (no loader workers)"),
    _a("shuffle_buffer_size", int, 0, DATA, None, note="no effect: each training window is shuffled as a whole"),
    _a("nvt_part_mem_fraction", float, 0.1, DATA, None, note=_NO_LOADER),
    _a("nvt_part_size", str, None, DATA, None, note=_NO_LOADER),
    _a("petastorm_reader_pool_type", str, "thread", DATA, None, note=_NO_LOADER),
    _a("pad_token", int, 0, DATA, None, unsupported="only 0 is supported as the padding id"),
    _a("mask_token", int, 0, DATA, None, unsupported="the [MASK] input is a trained embedding, not an item id"),
    _a("feature_prefix_neg_sample", str, "_neg_", DATA, None, note=_NO_EFFECT_ORIGINAL),
    _a("session_aware", bool, False, DATA, None, unsupported="session-aware mode (features of past user sessions) is not available"),
    _a("session_aware_features_prefix", str, "bef_", DATA, None, note="no effect (only with --session_aware, not available)"),
    _a("session_aware_past_seq_length_max", int, 20, DATA, None, note="no effect (only with --session_aware, not available)"),
    # ---- model (ModelArguments) ---------------------------------------------------------------------
    _a("model_type", str, "gpt2", MODEL),
    _a("d_model", int, 256, MODEL),
    _a("n_layer", int, 12, MODEL),
    _a("n_head", int, 4, MODEL),
    _a("layer_norm_eps", float, 1e-12, MODEL),
    _a("initializer_range", float, 0.02, MODEL),
    _a("hidden_act", str, "gelu", MODEL),
    _a("dropout", float, 0.1, MODEL),
    _a("attn_type", str, "uni", MODEL, None, help="XLNet attention uni/bi; when not given: uni for CLM, bi otherwise"),
    _a("summary_type", str, "last", MODEL, None, note="no effect: no XLNet sequence-summary head is built (none was used in the original)"),
    _a("num_hidden_groups", int, 1, MODEL),
    _a("inner_group_num", int, 1, MODEL),
    _a("tf_out_activation", str, "tanh", MODEL),
    _a("compat", str, "recsys2021", MODEL),  # sessrec's own: the paper's code or the released library where they differ
    _a("inp_merge", str, "mlp", MODEL),
    _a("mf_constrained_embeddings", bool, False, MODEL),
    _a("item_embedding_dim", int, None, MODEL),
    _a("item_id_embeddings_init_std", float, 0.5, MODEL),
    _a("softmax_temperature", float, 1.0, MODEL),
    _a("label_smoothing", float, 0.0, MODEL),
    _a("loss_type", str, "cross_entropy", MODEL),
    _a("sampled_softmax", bool, False, MODEL),
    _a("sampled_softmax_max_n_samples", int, 1000, MODEL),
    # sessrec's own, for the post-2021 losses --loss_type takes here too (gbce, bpr_max): sessrec's defaults
    _a("gbce_t", float, 0.75, MODEL),
    _a("num_negatives", int, 256, MODEL),
    _a("bpr_max_reg", float, 1.0, MODEL),
    _a("similarity_type", str, "concat_mlp", MODEL, None, note="no effect (it was dead code in the original scripts too)"),
    _a("avg_session_length", int, None, MODEL, None, note="no effect: evaluation buffers are sized automatically"),
    _a("margin_loss", float, 0.0, MODEL, None, note=_NO_EFFECT_ORIGINAL),
    _a("loss_scale_factor", float, 1.0, MODEL, None, unsupported="the loss is not rescaled"),
    _a("use_ohe_item_ids_inputs", bool, False, MODEL, None, unsupported="one-hot item inputs are not available (item ids are embedded)"),
    _a("bpr_max_reg_lambda", float, 0.0, MODEL, None, note="no effect (only with --loss_type bpr_max_reg, not available)"),
    _a("negative_sampling", bool, False, MODEL, None, unsupported="negative sampling for pairwise losses is not available (see --sampled_softmax)"),
    _a("neg_sampling_store_size", int, 1000000, MODEL, None, note="no effect (only with --negative_sampling, not available)"),
    _a("neg_sampling_extra_samples_per_batch", int, 32, MODEL, None, note="no effect (only with --negative_sampling, not available)"),
    _a("neg_sampling_alpha", float, 0.0, MODEL, None, note="no effect (only with --negative_sampling, not available)"),
    _a("model_name_or_path", str, None, MODEL, None, unsupported="loading pretrained HuggingFace weights is not available"),
    _a("config_name", str, None, MODEL, None, unsupported="loading pretrained HuggingFace configs is not available"),
    _a("cache_dir", str, None, MODEL, None, unsupported="loading pretrained HuggingFace models is not available"),
    *(_a(n, int, d, MODEL, None, note="no effect (Reformer configuration; --model_type reformer is not available)")
      for n, d in (("axial_pos_shape_first_dim", 4), ("attn_chunk_length", 4), ("num_chunks_before", 1),
                   ("num_chunks_after", 0), ("chunk_size_feed_forward", 0), ("lsh_num_hashes", 2))),
    # ---- objectives: --mlm/--plm/--rtd select ExperimentConfig.task (plm > rtd > mlm > clm) ----------
    _a("mlm", bool, False, OBJECTIVE, None, help="masked-item objective (task mlm)"),
    _a("plm", bool, False, OBJECTIVE, None, help="permutation objective (task plm; wins over --rtd and --mlm)"),
    _a("rtd", bool, False, OBJECTIVE, None, help="replaced-item detection (task rtd; wins over --mlm)"),
    _a("mlm_probability", float, 0.15, OBJECTIVE),
    _a("plm_probability", float, 0.25, OBJECTIVE),
    _a("plm_max_span_length", int, 5, OBJECTIVE),
    _a("plm_mask_input", bool, False, OBJECTIVE),
    _a("plm_permute_all", bool, False, OBJECTIVE),
    _a("rtd_sample_from_batch", bool, False, OBJECTIVE),
    _a("rtd_use_batch_interaction", bool, False, OBJECTIVE),
    _a("rtd_discriminator_loss_weight", float, 50.0, OBJECTIVE),
    _a("rtd_generator_loss_weight", float, 1.0, OBJECTIVE),
    _a("rtd_tied_generator", bool, False, OBJECTIVE),
    _a("electra_generator_hidden_size", float, 0.25, OBJECTIVE),
    _a("eval_on_last_item_seq_only", bool, False, OBJECTIVE),
    _a("train_on_last_item_seq_only", bool, False, OBJECTIVE),
    # ---- side information ---------------------------------------------------------------------------
    _a("input_features_aggregation", str, "concat", SIDE),
    _a("embedding_dim_from_cardinality_multiplier", float, 2.0, SIDE),
    _a("other_embeddings_init_std", float, 0.05, SIDE),
    _a("numeric_features_project_to_embedding_dim", int, 0, SIDE),
    _a("numeric_features_soft_one_hot_encoding_num_embeddings", int, 0, SIDE),
    _a("stochastic_shared_embeddings_replacement_prob", float, 0.0, SIDE),
    _a("layer_norm_featurewise", bool, False, SIDE),
    _a("layer_norm_all_features", bool, False, SIDE),
    _a("input_dropout", float, 0.0, SIDE),
    _a("features_same_size_item_embedding", bool, False, SIDE, None, unsupported="use --input_features_aggregation elementwise_sum_multiply_item_embedding"),
    # ---- training (example fields, T4RecTrainingArguments, HuggingFace TrainingArguments) ----------
    _a("per_device_train_batch_size", int, 8, TRAINING),
    _a("per_device_eval_batch_size", int, 8, TRAINING),
    _a("num_train_epochs", float, 3.0, TRAINING),
    _a("max_steps", int, -1, TRAINING),
    _a("learning_rate", float, 5e-5, TRAINING),
    _a("weight_decay", float, 0.0, TRAINING),
    _a("adam_beta1", float, 0.9, TRAINING),
    _a("adam_beta2", float, 0.999, TRAINING),
    _a("adam_epsilon", float, 1e-8, TRAINING),
    _a("max_grad_norm", float, 1.0, TRAINING),
    _a("learning_rate_schedule", str, None, TRAINING, None, help="constant|linear|cosine[_with_warmup], restarted each window (wins over --lr_scheduler_type)"),
    _a("lr_scheduler_type", str, "linear", TRAINING, None, help="HuggingFace name of the schedule: linear, cosine, constant, constant_with_warmup"),
    _a("learning_rate_num_cosine_cycles_by_epoch", float, 1.25, TRAINING),
    _a("learning_rate_warmup_steps", int, 0, TRAINING, None, help="warm-up steps of each window's schedule (the original meaning)"),
    _a("warmup_steps", int, 0, TRAINING, None, help="the same as --learning_rate_warmup_steps"),
    _a("warmup_ratio", float, 0.0, TRAINING),
    _a("dataloader_drop_last", bool, False, TRAINING, note="drops the last incomplete training batch; evaluation keeps every session (the original also dropped evaluation sessions)"),
    _a("seed", int, 42, TRAINING),
    _a("fp16", bool, False, TRAINING, None, help="float16 mixed precision on a CUDA device (float32 otherwise, said once)"),
    _a("bf16", bool, False, TRAINING),
    _a("no_cuda", bool, False, TRAINING, None, help="run on the CPU even if a CUDA device is present"),
    _a("local_rank", int, -1, TRAINING, None, aliases=("local-rank",),
       help="passed by a distributed launcher (torch.distributed.launch): accepted under torchrun, where it must equal LOCAL_RANK"),
    _a("ddp_timeout", int, 1800, TRAINING),  # HuggingFace TrainingArguments' name and default
    _a("gradient_accumulation_steps", int, 1, TRAINING, None, unsupported="gradient accumulation is not available"),
    _a("validate_every", int, -1, TRAINING, None, note=_NO_EFFECT_ORIGINAL),
    _a("eval_steps_on_train_set", int, 20, TRAINING),
    _a("compute_metrics_each_n_steps", int, 1, TRAINING),
    _a("eval_accumulation_steps", int, None, TRAINING, None, note="no effect: evaluation accumulates metrics batch by batch"),
    _a("predict_top_k", int, 100, TRAINING, None, note="no effect: metrics rank the full catalog (the simulated-inference check uses top-10, as the original)"),
    _a("pyprof", bool, False, TRAINING, None, note="no effect (NVIDIA pyprof profiling)"),
    _a("pyprof_start_step", int, 0, TRAINING, None, note="no effect (NVIDIA pyprof profiling)"),
    _a("pyprof_stop_step", int, 0, TRAINING, None, note="no effect (NVIDIA pyprof profiling)"),
    _a("use_legacy_prediction_loop", bool, True, TRAINING, None, note="no effect (HuggingFace Trainer option)"),
    # ---- outputs and logging ------------------------------------------------------------------------
    _a("output_dir", str, None, OUTPUT),
    _a("overwrite_output_dir", bool, False, OUTPUT),
    _a("do_train", bool, False, OUTPUT, None, help="implied: every window is trained"),
    _a("do_eval", bool, False, OUTPUT, None, help="implied: every next window is evaluated"),
    _a("do_predict", bool, False, OUTPUT, None, note="no effect (the protocol trains and evaluates each window)"),
    _a("logging_steps", int, 500, OUTPUT, note="the training loss is recorded every that many steps (history.jsonl and the --report_to loggers)"),
    _a("logging_dir", str, None, OUTPUT),
    _a("report_to", str, ["all"], OUTPUT, None, nargs="+", help="loggers: wandb tensorboard, all (those installed) or none"),
    _a("run_name", str, None, OUTPUT),
    _a("experiments_group", str, "default", OUTPUT),
    _a("disable_tqdm", bool, False, OUTPUT, "quiet"),
    _a("save_steps", int, 500, OUTPUT, None, note="sessrec checkpoints after every window (resumable with --resume), not every N steps; 0 turns checkpoints off, as the paper's commands meant"),
    _a("save_total_limit", int, None, OUTPUT, None, note="number of window checkpoints kept (besides checkpoint-last)"),
    _a("log_predictions", bool, False, OUTPUT, None, help="not available: prediction logs are not written"),
    _a("log_attention_weights", bool, False, OUTPUT, None, help="not available: attention weights are not written"),
]

BY_NAME = {a.name: a for a in ARGS}
_LOADER_ENGINES = ("merlin", "merlin_dataloader", "nvtabular", "nvtabular_dataloader", "pyarrow", "pyarrow_builder", "petastorm")
_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


def str2bool(v: str | bool) -> bool:
    """HuggingFace's boolean parsing: yes/true/t/y/1 and no/false/f/n/0, any case."""
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got '{v}'")


class _Parser(argparse.ArgumentParser):
    """argparse that raises SessrecError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str):
        raise SessrecError(message)


def build_parser(prog: str, args: list[Arg], extra: list[Arg] = ()) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, allow_abbrev=False, add_help=True,
                     description="The paper's command line, mapped onto sessrec's ExperimentConfig (see README 'Reproducing the paper').")
    helps = field_help()
    for a in [*args, *extra]:
        text = a.note or a.unsupported or a.help or helps.get(a.field or "", "")
        kw: dict[str, Any] = {"dest": a.name, "default": argparse.SUPPRESS, "help": f"{text} (default: {a.default})".strip()}
        flags = [f"--{x}" for x in (a.name, *a.aliases)]
        if a.type is bool:
            parser.add_argument(*flags, type=str2bool, nargs="?", const=True, metavar="BOOL", **kw)
        else:
            parser.add_argument(*flags, type=a.type, nargs=a.nargs, **kw)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str], known: list[Arg]) -> tuple[dict[str, Any], set[str]]:
    """All argument values (original defaults where not given) and the names given on the command line."""
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = next((u for u in unknown if u.startswith("-")), unknown[0])
        raise unknown_argument_error(flag, known)
    given = set(vars(ns))
    values = {a.name: a.default for a in known}
    values.update(vars(ns))
    return values, given


def unknown_argument_error(flag: str, known: list[Arg]) -> SessrecError:
    if "\r" in flag:  # printed as is, a carriage return garbles the line
        return SessrecError(f"unrecognized argument {flag!r}: the command has Windows line endings (CRLF), and a "
                            "backslash before one does not continue the line; convert the file (dos2unix) and run it again")
    if not flag.strip():
        return SessrecError(f"unrecognized argument {flag!r}: is there a space after a backslash that should end a line?")
    close = difflib.get_close_matches(flag.lstrip("-"), [a.name for a in known], n=1)
    hint = f" (did you mean --{close[0]}?)" if close else ""
    return SessrecError(f"unrecognized argument {flag}{hint}; the accepted arguments are listed by --help and in the README")


def to_config(values: dict[str, Any], given: set[str], args: list[Arg] = ARGS) -> tuple[ExperimentConfig, list[str]]:
    """Fill an :class:`ExperimentConfig` from the parsed arguments; returns it with the notes to print."""
    notes: list[str] = []
    fields: dict[str, Any] = {}
    for a in args:
        if a.name not in values:
            continue
        value = values[a.name]
        if a.unsupported and value != a.default:
            raise SessrecError(f"--{a.name} {value}: {a.unsupported}")
        if a.field:
            fields[a.field] = value
        if a.note and a.name in given:
            no_loss = a.name == "logging_steps" and values.get("model_type") in _NO_LOSS
            notes.append(a.said(value, "no effect: the kNN baselines train no loss" if no_loss else a.note))

    objectives = [t for t in ("plm", "rtd", "mlm") if values[t]]
    fields["task"] = objectives[0] if objectives else "clm"
    notes += [f"--{t}: implied by --rtd (RTD trains an MLM generator beside its discriminator)"
              if (t, objectives[0]) == ("mlm", "rtd") else
              f"--{t}: no effect with --{objectives[0]} (one objective trains; the priority is plm, rtd, mlm)"
              for t in objectives[1:]]
    inert = inert_with_task(fields["task"], values["model_type"])
    for a in args:  # said once here when given; an original default that cannot act is no choice: sessrec's is kept
        if a.field in inert and a.field in fields:
            if a.name in given:
                notes.append(a.said(values[a.name], inert[a.field]))
            del fields[a.field]
    if "attn_type" in given:  # else sessrec picks uni for clm, bi otherwise (the example's fixed 'uni' default made XLNet-MLM causal)
        fields["attn_type"] = values["attn_type"]
    fields["session_seq_length_max"] = values["session_seq_length_max"] or values["max_sequence_length"] or 20
    if values["session_seq_length_max"] and values["max_sequence_length"] not in (None, values["session_seq_length_max"]):
        notes.append(f"--max_sequence_length {values['max_sequence_length']}: no effect, --session_seq_length_max "
                     f"{values['session_seq_length_max']} wins")
    fields.update(_schedule(values, given, notes))
    fields.update(_schema(values, given, notes))
    fields["report_to"] = ",".join(values["report_to"])
    if "save_steps" in given:
        fields["save_checkpoints"] = values["save_steps"] > 0
    if values["save_total_limit"] is not None:
        fields["keep_checkpoints"] = values["save_total_limit"]

    engine = values["data_loader_engine"]
    if engine not in _LOADER_ENGINES:
        raise SessrecError(f"--data_loader_engine {engine}: expected one of {', '.join(_LOADER_ENGINES)}")
    if "data_loader_engine" in given:
        notes.append(f"--data_loader_engine {engine}: sessrec's own parquet loader is used (each training window is shuffled, as by the merlin loader)")
    _check_local_rank(values["local_rank"])
    if values["no_cuda"]:
        fields["device"] = "cpu"
    if values["fp16"]:
        import torch

        if values["no_cuda"] or not torch.cuda.is_available():
            notes.append("--fp16: no CUDA device here, training in float32")
        else:
            fields["fp16"] = True
    if values["compat"] == "t4r-23.12" and "tf_out_activation" in given and fields["task"] != "rtd":
        notes.append(f"--tf_out_activation {values['tf_out_activation']}: no effect with --compat t4r-23.12 "
                     "(the released library ignores it: ReLU input projection, no output activation)")
    for flag in ("do_train", "do_eval"):
        if flag in given and not values[flag]:
            raise SessrecError(f"--{flag} False: this script always trains on window t and evaluates on window t+1")
        if flag not in given:
            notes.append(f"--{flag} not given: implied, this script always trains on window t and evaluates on window t+1")
    for flag, what in (("log_predictions", "prediction logs are not written (sessrec.recommend gives top-k lists)"),
                       ("log_attention_weights", "attention weights are not written")):
        if values[flag]:
            notes.append(f"--{flag}: not available, {what}")
    if values["output_dir"] is None:
        raise SessrecError("the following argument is required: --output_dir")
    cfg = ExperimentConfig.from_dict(fields, source="command line").validate()
    inert, default = cfg.inert_with_others(), ExperimentConfig()
    for a in args:  # as for the task's options above: said once here when given, and sessrec's default kept
        if a.field in inert and getattr(cfg, a.field) != getattr(default, a.field):
            if a.name in given:
                notes.append(a.said(values[a.name], inert[a.field]))
            setattr(cfg, a.field, getattr(default, a.field))
    return cfg, notes


def _check_local_rank(value: int) -> None:
    """``--local_rank N``, as the launchers of HuggingFace's days passed it, is only meaningful in a
    process they started; the process's GPU then comes from ``LOCAL_RANK`` (README "Distributed training")."""
    if value == -1:
        return
    if not launched():
        raise SessrecError(f"--local_rank {value}: only a distributed launcher passes it; start the command with "
                           "torchrun --nproc-per-node N (README 'Distributed training'), or leave it out to run one process")
    env = local_rank()
    if env is not None and env != value:
        raise SessrecError(f"--local_rank {value} but the launcher set LOCAL_RANK={env}: leave --local_rank out under torchrun")


def _schedule(values: dict[str, Any], given: set[str], notes: list[str]) -> dict[str, Any]:
    """``--learning_rate_schedule`` wins over HF ``--lr_scheduler_type`` (as in the example, said when both are
    given); warm-up steps likewise."""
    out: dict[str, Any] = {}
    if values["learning_rate_schedule"]:
        out["learning_rate_schedule"] = values["learning_rate_schedule"]
        if "lr_scheduler_type" in given and values["lr_scheduler_type"] != values["learning_rate_schedule"]:
            notes.append(f"--lr_scheduler_type {values['lr_scheduler_type']}: no effect, --learning_rate_schedule "
                         f"{values['learning_rate_schedule']} wins (as in the original)")
    else:
        if values["lr_scheduler_type"] not in _SCHEDULERS:
            raise SessrecError(f"--lr_scheduler_type {values['lr_scheduler_type']}: expected one of {', '.join(_SCHEDULERS)}")
        out["learning_rate_schedule"] = values["lr_scheduler_type"]
    a, b = values["learning_rate_warmup_steps"], values["warmup_steps"]
    if a and b and a != b:
        raise SessrecError(f"--learning_rate_warmup_steps {a} and --warmup_steps {b} disagree: give one")
    out["warmup_steps"] = a or b
    return out


def _schema(values: dict[str, Any], given: set[str], notes: list[str]) -> dict[str, Any]:
    """``--feature_config`` (original YAML: its features decide the inputs) or ``--features_schema_path``."""
    yaml_path, schema_path = values["feature_config"], values["features_schema_path"]
    if yaml_path and schema_path:
        raise SessrecError("give one of --feature_config (original YAML) and --features_schema_path (schema.pbtxt), not both")
    side = values["use_side_information_features"]
    if yaml_path:
        from sessrec.schema import load_schema

        schema = load_schema(yaml_path)
        features = [f.name for f in schema.features if not f.is_item_id and (f.is_categorical or f.is_continuous)]
        if features and not side and Path(yaml_path).suffix.lower() not in (".yaml", ".yml"):
            notes.append(f"--feature_config {yaml_path}: a schema file, not the original YAML feature map; as in a YAML, "
                         f"its features are the inputs: {len(features)} side features on (--features_schema_path "
                         "reads the item id only, unless --use_side_information_features)")
        if features and "use_side_information_features" in given and not side:
            notes.append(f"--use_side_information_features False: no effect with --feature_config {yaml_path}, whose "
                         f"{len(features)} side features are inputs (as in the original: its features decide the inputs)")
        side = side or bool(features)
    return {"features_schema_path": yaml_path or schema_path, "use_side_information_features": side}


# ---- baselines: --<algorithm>-<parameter> value ---------------------------------------------------------
_ALG_PARAM = re.compile(r"^--([A-Za-z0-9]+)-([A-Za-z0-9_-]+)$")


def split_algorithm_params(argv: list[str]) -> tuple[list[str], dict[str, tuple[str, Any]]]:
    """Take ``--<alg>-<param> [value]`` pairs out of ``argv`` (the original's "remaining args").

    A flag without a value is True; values are cast as the original did: true/false (any case) to
    bool, then int, then float, else the string. Returns the other arguments and
    ``{"alg-param": (alg, value)}``.
    """
    rest: list[str] = []
    params: dict[str, tuple[str, Any]] = {}
    i = 0
    while i < len(argv):
        m = _ALG_PARAM.match(argv[i])
        if not m:
            rest.append(argv[i])
            i += 1
            continue
        has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        params[f"{m.group(1)}-{m.group(2)}"] = (m.group(1), cast_value(argv[i + 1]) if has_value else True)
        i += 2 if has_value else 1
    return rest, params


def cast_value(text: str) -> bool | int | float | str:
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
