"""The experiment config: the single source of truth that every front end fills in.

``sessrec run`` flags, YAML files and the original ``transf_exp_main`` arguments all become one
:class:`ExperimentConfig`. Field names keep the original argument names (``d_model``,
``per_device_train_batch_size``, ...). Unknown keys and wrong types are errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sessrec.errors import SessrecError, warn_once
from sessrec.io import reading

TASKS = ("clm", "mlm", "plm", "rtd")
LOSSES = ("cross_entropy", "gbce", "bpr_max")
SCHEDULES = ("constant", "linear", "cosine")
ACTIVATIONS = ("tanh", "relu", "gelu", "identity")
AGGREGATIONS = ("concat", "elementwise_sum_multiply_item_embedding")

# Alternative spellings accepted in YAML files and the Python API.
ALIASES = {
    "model": "model_type",
    "schema": "features_schema_path",
    "element-wise-sum-item-multi": "elementwise_sum_multiply_item_embedding",
}


COMPAT = ("recsys2021", "t4r-23.12")
MAX_SEED = 2**32 - 1  # the largest seed every random generator used takes (numpy's legacy one is the narrowest)


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


# options that act with some tasks only: option -> (those tasks, what it is)
_TASK_ONLY = {**{name: (("plm",), "a PLM option")
                 for name in ("plm_probability", "plm_max_span_length", "plm_permute_all", "plm_mask_input")},
              **{name: (("rtd",), "an RTD option")
                 for name in ("rtd_sample_from_batch", "rtd_use_batch_interaction", "rtd_discriminator_loss_weight",
                              "rtd_generator_loss_weight", "rtd_tied_generator", "electra_generator_hidden_size")},
              "mlm_probability": (("mlm", "rtd"), "an MLM/RTD option"),
              "train_on_last_item_seq_only": (("clm",), "a CLM option")}


_RNN_INERT = ("n_head", "hidden_act", "layer_norm_eps")  # Transformer options a GRU/LSTM body has no use for
# options of one architecture: option -> (the bodies that read it, what it is)
_MODEL_ONLY = {name: (("albert",), "an ALBERT option") for name in ("num_hidden_groups", "inner_group_num")}
_FIXED_ACTIVATION = {"sasrec": "ReLU", "hstu": "SiLU"}  # bodies whose activation is their paper's


def inert_with_task(task: str, model_type: str = "") -> dict[str, str]:
    """{option: why it has no effect} for the options that cannot act with ``task`` or, given, the body
    ``model_type`` (whatever their values: see :meth:`ExperimentConfig.inert_options` for those that depend on other
    options)."""
    out = {name: f"no effect with task {task} ({what})" for name, (tasks, what) in _TASK_ONLY.items() if task not in tasks}
    if model_type:
        out.update({name: f"no effect on the {model_type} body ({what})" for name, (models, what) in _MODEL_ONLY.items()
                    if model_type not in models})
    if model_type in ("gru", "lstm"):
        out.update({name: f"no effect on the {model_type} body (a Transformer option)" for name in _RNN_INERT})
    if model_type in _FIXED_ACTIVATION:
        out["hidden_act"] = (f"no effect on the {model_type} body (its activation is {_FIXED_ACTIVATION[model_type]}, "
                             "as in its paper)")
    return out


def set_but_inert(cfg: ExperimentConfig, inert: dict[str, str]) -> list[str]:
    """"NAME has WHY" for the options of ``inert`` ({option: why it has no effect}) that ``cfg`` sets away from their
    defaults: a default that cannot act is no choice of the user's."""
    default = ExperimentConfig()
    return [f"{name} has {why}" for name, why in inert.items() if getattr(cfg, name) != getattr(default, name)]


def inert_with_protocol(cfg: ExperimentConfig) -> dict[str, str]:
    """The protocol's options that others leave without effect, for every model and baseline alike."""
    out = {}
    if not cfg.no_incremental_training:
        out["training_time_window_size"] = ("no effect without no_incremental_training (incremental training goes on "
                                            "from the previous window's model)")
    if not cfg.save_checkpoints:
        out["keep_checkpoints"] = "no effect with save_checkpoints off"
    return out


def neural_only_options() -> list[str]:
    """The options of the neural models' architecture, objective and training: a baseline reads item ids with its own
    ``baseline_params`` (its seed, evaluation and data options still apply)."""
    names = [f.name for f in dataclasses.fields(ExperimentConfig)]
    model = names[names.index("task"):names.index("train_on_last_item_seq_only") + 1]
    training = names[names.index("learning_rate"):names.index("learning_rate_num_cosine_cycles_by_epoch") + 1]
    return [n for n in model + training + ["fp16", "bf16"]
            if n not in ("eval_on_last_item_seq_only", "baseline_params", "per_device_eval_batch_size")]


@dataclass
class ExperimentConfig:
    """Everything one incremental train/evaluate experiment needs."""

    # ---- data -----------------------------------------------------------------------------------
    data_path: str | None = _f(None, "folder with one sub-folder per time window (0001/, 0002/, ...); default: the bundled sample data set")
    features_schema_path: str | None = _f(None, "schema file (.pbtxt or .json); default: DATA_PATH/schema.pbtxt or .json, else inferred from the parquet files")
    start_time_window_index: int = _f(1, "first training window")
    final_time_window_index: int | None = _f(None, "last evaluated window (training stops one before it); default: the last window found")
    time_window_folder_pad_digits: int = _f(4, "zero padding of the window folder names")
    eval_on_test_set: bool = _f(False, "evaluate on test.parquet instead of valid.parquet")
    use_side_information_features: bool = _f(False, "feed every categorical/continuous schema feature, not only the item id")
    session_seq_length_max: int = _f(20, "sessions are padded/trimmed to this length (longer ones keep their first items)")
    dataloader_drop_last: bool = _f(False, "drop the last incomplete training batch (evaluation never drops sessions)")
    no_incremental_training: bool = _f(False, "retrain from scratch each window on past windows instead of fine-tuning")
    training_time_window_size: int = _f(0, "with --no-incremental-training: number of past windows to train on (0 = all)")

    # ---- model ----------------------------------------------------------------------------------
    model_type: str = _f("xlnet", "architecture (xlnet, gpt2, ...) or baseline (pop, ...)")
    task: str = _f("mlm", "training objective: clm, mlm, plm or rtd")
    d_model: int = _f(64, "hidden size of the sequence model")
    n_layer: int = _f(2, "number of layers")
    n_head: int = _f(4, "number of attention heads")
    hidden_act: str = _f("gelu", "activation of the feed-forward blocks")
    dropout: float = _f(0.1, "dropout inside the sequence model")
    layer_norm_eps: float = _f(1e-12, "LayerNorm epsilon of the sequence model")
    initializer_range: float = _f(0.02, "std of the sequence model's weight init")
    attn_type: str | None = _f(None, "XLNet attention: uni (causal) or bi; default: uni for clm, bi otherwise")
    num_hidden_groups: int = _f(1, "ALBERT parameter-sharing groups (-1 = one per layer, i.e. no sharing)")
    inner_group_num: int = _f(1, "ALBERT inner repetitions")
    model_config: dict = _f({}, "extra keyword arguments for the architecture's config (e.g. for a generic transformers model)")
    item_embedding_dim: int | None = _f(None, "item-id embedding size; default: d_model")
    mf_constrained_embeddings: bool = _f(True, "tie the output layer to the item embedding table (with an output bias)")
    tf_out_activation: str = _f("tanh", "activation after the input projection and the output projection: tanh, relu, gelu, identity")
    compat: str = _f("recsys2021", "where the paper's code and the released Transformers4Rec library differ, which to follow: "
                     "recsys2021 (the paper's code: tf_out_activation projections in and out, output bias) or t4r-23.12 "
                     "(the library: ReLU input projection, tied output without bias or projection, featurewise LayerNorm "
                     "skips raw scalars; tf_out_activation unused)")
    inp_merge: str = _f("mlp", "input projection to d_model: mlp (Linear + activation) or identity")
    softmax_temperature: float = _f(1.0, "logits are divided by this")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy")
    loss_type: str = _f("cross_entropy", "training loss of clm/mlm: cross_entropy (full softmax, or sampled with sampled_softmax), "
                        "gbce (gSASRec's calibrated binary cross-entropy over uniform negatives) or bpr_max (GRU4Rec's)")
    gbce_t: float = _f(0.75, "gbce: calibration t in [0, 1] (0 = plain BCE, 1 = fully calibrated to the full-softmax probabilities)")
    num_negatives: int = _f(256, "gbce, bpr_max: negatives sampled uniformly from the catalog for each positive")
    bpr_max_reg: float = _f(1.0, "bpr_max: weight of the score regularisation (GRU4Rec's bpreg)")
    sampled_softmax: bool = _f(False, "train with a sampled softmax (log-uniform negatives, logQ correction)")
    sampled_softmax_max_n_samples: int = _f(1000, "negatives drawn per batch (repeats kept once: fewer distinct ones)")
    item_id_embeddings_init_std: float = _f(0.1, "std of the Normal init of the item-id table")
    other_embeddings_init_std: float = _f(0.05, "std of the Normal init of the other embedding tables")
    embedding_dim_from_cardinality_multiplier: float = _f(2.0, "side categorical dim = ceil(cardinality**0.25 * this)")
    input_features_aggregation: str = _f("concat", "concat or elementwise_sum_multiply_item_embedding")
    numeric_features_project_to_embedding_dim: int = _f(0, "project each continuous feature to this dim (0 = raw scalar)")
    numeric_features_soft_one_hot_encoding_num_embeddings: int = _f(0, "soft one-hot encode continuous features with this many embeddings (0 = off)")
    layer_norm_featurewise: bool = _f(False, "LayerNorm each feature representation before aggregation")
    layer_norm_all_features: bool = _f(False, "LayerNorm the aggregated features before the projection")
    input_dropout: float = _f(0.0, "dropout on the aggregated input features")
    stochastic_shared_embeddings_replacement_prob: float = _f(0.0, "SSE: probability of swapping a categorical value with another of the batch (training only)")
    mlm_probability: float = _f(0.3, "MLM/RTD: probability of masking each item")
    plm_probability: float = _f(0.25, "PLM: span length / context length")
    plm_max_span_length: int = _f(5, "PLM: max span length")
    plm_permute_all: bool = _f(False, "PLM: predict every item (no span sampling)")
    plm_mask_input: bool = _f(False, "PLM: replace target inputs by the [MASK] embedding")
    rtd_sample_from_batch: bool = _f(False, "RTD: sample replacements among the batch's masked items")
    rtd_use_batch_interaction: bool = _f(False, "RTD: reuse batch interaction embeddings for replaced items")
    rtd_discriminator_loss_weight: float = _f(50.0, "RTD: weight of the discriminator loss")
    rtd_generator_loss_weight: float = _f(1.0, "RTD: weight of the generator (MLM) loss")
    rtd_tied_generator: bool = _f(False, "RTD: generator and discriminator share one sequence model")
    electra_generator_hidden_size: float = _f(0.25, "RTD untied: generator hidden size as a fraction of d_model")
    train_on_last_item_seq_only: bool = _f(False, "CLM: train only on the last item of each session")
    eval_on_last_item_seq_only: bool = _f(True, "evaluate only the prediction of each session's last item")
    baseline_params: dict = _f({}, "parameters of a baseline model (e.g. {k: 500} for vsknn)")

    # ---- training -------------------------------------------------------------------------------
    learning_rate: float = _f(3e-3, "AdamW learning rate")
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to biases and LayerNorm weights)")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.999, "AdamW beta2")
    adam_epsilon: float = _f(1e-8, "AdamW epsilon")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 = off)")
    num_train_epochs: float = _f(5.0, "epochs per training window")
    max_steps: int = _f(-1, "if > 0: optimizer steps per window instead of epochs")
    per_device_train_batch_size: int = _f(64, "training batch size")
    per_device_eval_batch_size: int = _f(512, "evaluation batch size")
    learning_rate_schedule: str = _f("linear_with_warmup", "constant, linear or cosine (an optional _with_warmup suffix is accepted); restarted each window")
    warmup_steps: int = _f(0, "learning-rate warm-up steps per window")
    warmup_ratio: float = _f(0.0, "warm-up as a fraction of a window's steps (used when warmup_steps is 0)")
    learning_rate_num_cosine_cycles_by_epoch: float = _f(1.25, "cosine schedule: cycles = this x epochs")
    seed: int = _f(42, "random seed")
    fp16: bool = _f(False, "float16 mixed precision (CUDA only)")
    bf16: bool = _f(False, "bfloat16 mixed precision")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    num_threads: int = _f(0, "CPU threads for torch (0 = torch's default)")
    ddp_timeout: int = _f(1800, "under torchrun: seconds a process waits for the others at a collective before the run stops with an error")

    # ---- evaluation -----------------------------------------------------------------------------
    top_ks: list = _f([10, 20], "cut-offs of NDCG@k, HitRate/Recall@k and MRR@k")
    eval_steps_on_train_set: int = _f(20, "batches of the training window scored for the train_ metrics (0 = off)")
    compute_metrics_each_n_steps: int = _f(1, "score every n-th evaluation batch only")
    compare_with_pop: bool = _f(True, "also evaluate the most-popular ranking on the same windows")

    # ---- outputs --------------------------------------------------------------------------------
    output_dir: str | None = _f(None, "where results go; default: a new folder under runs/")
    overwrite_output_dir: bool = _f(False, "allow writing into a non-empty output folder")
    logging_steps: int = _f(20, "log the training loss every n steps")
    report_to: str = _f("none", "experiment loggers, comma-separated: wandb, tensorboard, all (every installed one) or none; W&B runs offline unless WANDB_MODE=online")
    logging_dir: str | None = _f(None, "TensorBoard event folder; default: OUTPUT_DIR/runs")
    run_name: str | None = _f(None, "run name shown by the loggers (W&B run name)")
    experiments_group: str | None = _f(None, "W&B group of the run")
    quiet: bool = _f(False, "no progress bars")
    save_checkpoints: bool = _f(True, "after every window save OUTPUT_DIR/checkpoint-NNNN and checkpoint-last (weights, optimizer, RNG states); needed by --resume")
    keep_checkpoints: int = _f(1, "numbered checkpoints kept: the newest N (-1 = all, 0 = only checkpoint-last)")
    resume: bool = _f(False, "continue the run in --output-dir from its newest checkpoint, with its saved config (flags given override it)")

    # ---- derived --------------------------------------------------------------------------------
    @property
    def schedule(self) -> str:
        return self.learning_rate_schedule.removesuffix("_with_warmup")

    @property
    def t4r_library(self) -> bool:
        """Follow the released Transformers4Rec library (23.12) where it differs from the paper's code."""
        return self.compat == "t4r-23.12"

    @property
    def item_dim(self) -> int:
        return self.item_embedding_dim or self.d_model

    @property
    def xlnet_attn_type(self) -> str:
        return self.attn_type or ("uni" if self.task == "clm" else "bi")

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> ExperimentConfig:
        cfg = cls()
        cfg.update(values, source)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        return cls.from_dict(load_yaml(path), source=str(path))

    def update(self, values: dict[str, Any], source: str = "config") -> ExperimentConfig:
        """Set fields from a mapping, checking names and types; returns self."""
        hints = _hints()
        for key, value in values.items():
            name = ALIASES.get(key, key).replace("-", "_")
            if name not in hints:
                raise SessrecError(f"{source}: unknown key '{key}'{_did_you_mean(name, hints)}")
            setattr(self, name, _coerce(name, value, hints[name], source))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> ExperimentConfig:
        """Check values that do not depend on the data; raise a one-line error naming the key. Values set directly
        (``ExperimentConfig(d_model="64")``, numpy numbers) are converted and type-checked as ``from_dict`` does: a
        string ``"no"`` for a switch is False, not a truthy string."""
        hints = _hints()
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name], "config")
            if isinstance(value, float) and not math.isfinite(value):
                raise SessrecError(f"{f.name} must be a finite number (got {value})")
            setattr(self, f.name, value)
        self.input_features_aggregation = ALIASES.get(self.input_features_aggregation, self.input_features_aggregation)
        _choice("task", self.task, TASKS)
        _choice("learning_rate_schedule", self.schedule, SCHEDULES)
        _choice("tf_out_activation", self.tf_out_activation, ACTIVATIONS)
        _choice("inp_merge", self.inp_merge, ("mlp", "identity"))
        _choice("compat", self.compat, COMPAT)
        _choice("input_features_aggregation", self.input_features_aggregation, AGGREGATIONS)
        _choice("loss_type", self.loss_type, LOSSES)
        self._validate_loss()
        self._validate_numbers()
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise SessrecError(f"device must be auto, cpu, cuda or cuda:N (got {self.device!r})")
        if self.attn_type is not None:
            _choice("attn_type", self.attn_type, ("uni", "bi"))
        for name in ("d_model", "n_layer", "n_head", "per_device_train_batch_size", "per_device_eval_batch_size",
                     "session_seq_length_max", "time_window_folder_pad_digits", "compute_metrics_each_n_steps", "ddp_timeout"):
            if getattr(self, name) < 1:
                raise SessrecError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.session_seq_length_max < 2:
            raise SessrecError(f"session_seq_length_max must be >= 2: a session is read as an item and the next one to "
                               f"predict (got {self.session_seq_length_max})")
        for name in ("warmup_steps", "initializer_range"):  # a negative warm-up or init std breaks training
            if getattr(self, name) < 0:
                raise SessrecError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.warmup_ratio < 0:
            raise SessrecError(f"warmup_ratio must be >= 0 (got {self.warmup_ratio})")
        if self.sampled_softmax and self.sampled_softmax_max_n_samples < 1:
            raise SessrecError(f"sampled_softmax_max_n_samples must be >= 1 (got {self.sampled_softmax_max_n_samples})")
        self._warn_odd_values()
        if self.start_time_window_index < 1:
            raise SessrecError(f"start_time_window_index must be >= 1 (got {self.start_time_window_index})")
        if self.final_time_window_index is not None and self.final_time_window_index <= self.start_time_window_index:
            raise SessrecError(
                f"final_time_window_index ({self.final_time_window_index}) must be greater than "
                f"start_time_window_index ({self.start_time_window_index}): at least one window trains and the next one is evaluated"
            )
        for name in ("dropout", "input_dropout", "label_smoothing", "stochastic_shared_embeddings_replacement_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SessrecError(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if not 0.0 < self.mlm_probability < 1.0:
            raise SessrecError(f"mlm_probability must be in (0, 1) (got {self.mlm_probability})")
        if not 0.0 < self.plm_probability <= 1.0:
            raise SessrecError(f"plm_probability must be in (0, 1] (got {self.plm_probability})")
        if self.plm_max_span_length < 1:
            raise SessrecError(f"plm_max_span_length must be >= 1 (got {self.plm_max_span_length})")
        if self.rtd_use_batch_interaction and not self.rtd_sample_from_batch:
            raise SessrecError("rtd_use_batch_interaction reuses the interactions of sampled batch items: it needs rtd_sample_from_batch")
        if not 0.0 < self.electra_generator_hidden_size <= 1.0:
            raise SessrecError(f"electra_generator_hidden_size must be in (0, 1] (got {self.electra_generator_hidden_size})")
        if min(self.rtd_discriminator_loss_weight, self.rtd_generator_loss_weight) < 0:
            raise SessrecError("rtd_discriminator_loss_weight and rtd_generator_loss_weight must be >= 0")
        if self.num_hidden_groups == 0 or self.num_hidden_groups < -1:
            raise SessrecError(f"num_hidden_groups must be -1 (no sharing) or >= 1 (got {self.num_hidden_groups})")
        if self.inner_group_num < 1:
            raise SessrecError(f"inner_group_num must be >= 1 (got {self.inner_group_num})")
        if self.softmax_temperature <= 0:
            raise SessrecError(f"softmax_temperature must be > 0 (got {self.softmax_temperature})")
        if self.learning_rate <= 0:
            raise SessrecError(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise SessrecError("num_train_epochs must be > 0 (or set max_steps)")
        if not self.top_ks or any(not isinstance(k, int) or k < 1 for k in self.top_ks):
            raise SessrecError(f"top_ks must be a list of positive integers (got {self.top_ks})")

        if self.training_time_window_size < 0:
            raise SessrecError(f"training_time_window_size must be >= 0 (got {self.training_time_window_size})")
        if self.keep_checkpoints < -1:
            raise SessrecError(f"keep_checkpoints must be >= -1 (got {self.keep_checkpoints})")
        if self.resume and not self.output_dir:
            raise SessrecError("resume needs output_dir: the folder of the run to continue")
        self._validate_feature_options()
        if self.fp16 and self.bf16:
            raise SessrecError("choose one of fp16 and bf16")
        return self

    def inert_options(self) -> list[str]:
        """Options set away from their defaults that cannot act with this task or generator: warned, not refused (the
        paper's command lines carry some of them)."""
        out = set_but_inert(self, inert_with_task(self.task, self.model_type))
        if (self.task == "rtd" and self.rtd_tied_generator
                and self.electra_generator_hidden_size != ExperimentConfig().electra_generator_hidden_size):
            out.append("electra_generator_hidden_size has no effect with rtd_tied_generator (the generator is the "
                       "discriminator's own sequence model)")
        return out + set_but_inert(self, self.inert_with_others())

    def inert_with_others(self) -> dict[str, str]:
        """{option: why it has no effect} for the options that other options of this config leave without effect."""
        out = {}
        if not self.use_side_information_features:  # the paper's item-id-only command lines pass them
            out.update({name: "no effect without side information features (use_side_information_features is off)"
                        for name in ("other_embeddings_init_std", "embedding_dim_from_cardinality_multiplier")})
        if self.loss_type != "gbce":
            out["gbce_t"] = f"no effect with loss_type {self.loss_type} (a gbce option)"
        if self.loss_type != "bpr_max":
            out["bpr_max_reg"] = f"no effect with loss_type {self.loss_type} (a bpr_max option)"
        if self.loss_type == "cross_entropy":
            out["num_negatives"] = ("no effect with loss_type cross_entropy (a gbce/bpr_max option; the sampled "
                                    "softmax takes sampled_softmax_max_n_samples)")
        if not self.sampled_softmax:
            out["sampled_softmax_max_n_samples"] = "no effect without sampled_softmax"
        if self.model_type in ("gru", "lstm") and self.mf_constrained_embeddings:
            out["initializer_range"] = (f"no effect on the {self.model_type} body (its recurrent layers keep PyTorch's "
                                        "initialisation; it sets the free output layer of no_mf_constrained_embeddings)")
        out.update(inert_with_protocol(self))
        if self.warmup_steps > 0:
            out["warmup_ratio"] = "no effect with warmup_steps > 0 (the ratio is used when warmup_steps is 0)"
        if self.schedule != "cosine":
            out["learning_rate_num_cosine_cycles_by_epoch"] = f"no effect with learning_rate_schedule {self.schedule}"
        loggers = {x.strip() for x in self.report_to.split(",")}
        if not loggers & {"tensorboard", "all"}:
            out["logging_dir"] = f"no effect with report_to {self.report_to} (the TensorBoard folder)"
        if not loggers & {"wandb", "all"}:
            out.update({name: f"no effect with report_to {self.report_to} (a W&B option)"
                        for name in ("run_name", "experiments_group")})
        return out

    def _validate_numbers(self) -> None:
        """The optimiser's settings in their ranges; a seed that every generator takes."""
        for name in ("weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise SessrecError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not (0.0 <= self.adam_beta1 < 1.0 and 0.0 <= self.adam_beta2 < 1.0):
            raise SessrecError(f"adam_beta1 and adam_beta2 must be in [0, 1) (got {self.adam_beta1}, {self.adam_beta2})")
        if self.adam_epsilon <= 0:
            raise SessrecError(f"adam_epsilon must be > 0 (got {self.adam_epsilon})")
        if not 0 <= self.seed <= MAX_SEED:
            raise SessrecError(f"seed must be between 0 and {MAX_SEED} (got {self.seed})")

    def _warn_odd_values(self) -> None:
        """Values that act as another one, said once a process: an error would also refuse the checkpoints and
        studies earlier versions made with them (they could then never be recommended from, resumed or continued)."""
        odd = [f"{name} {getattr(self, name)} acts as 0 ({what})" for name, what in (
            ("num_threads", "torch's default"), ("logging_steps", "no loss logged"),
            ("eval_steps_on_train_set", "no train_ metrics")) if getattr(self, name) < 0]
        if self.warmup_ratio > 1:
            odd.append(f"warmup_ratio {self.warmup_ratio} warms up for longer than a window: the learning rate never "
                       "reaches learning_rate")
        if len(set(self.top_ks)) < len(self.top_ks):
            odd.append(f"top_ks {self.top_ks} names a cut-off twice: one column each")
        for line in odd:
            warn_once(line)

    def _validate_loss(self) -> None:
        if not 0.0 <= self.gbce_t <= 1.0:
            raise SessrecError(f"gbce_t must be in [0, 1] (got {self.gbce_t})")
        if self.num_negatives < 1:
            raise SessrecError(f"num_negatives must be >= 1 (got {self.num_negatives})")
        if self.bpr_max_reg < 0:
            raise SessrecError(f"bpr_max_reg must be >= 0 (got {self.bpr_max_reg})")
        if self.loss_type == "cross_entropy":
            return
        if self.task not in ("clm", "mlm"):
            raise SessrecError(f"loss_type {self.loss_type} is for tasks clm and mlm (got task {self.task})")
        if self.sampled_softmax:
            raise SessrecError(f"loss_type {self.loss_type} samples its own negatives: it cannot be combined with sampled_softmax")
        if self.label_smoothing:
            raise SessrecError(f"label_smoothing smooths the softmax cross-entropy: it has no meaning with loss_type {self.loss_type}")

    def _validate_feature_options(self) -> None:
        for name in ("numeric_features_project_to_embedding_dim", "numeric_features_soft_one_hot_encoding_num_embeddings"):
            if getattr(self, name) < 0:
                raise SessrecError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.numeric_features_soft_one_hot_encoding_num_embeddings > 0 and self.numeric_features_project_to_embedding_dim == 0:
            raise SessrecError("numeric_features_soft_one_hot_encoding_num_embeddings needs numeric_features_project_to_embedding_dim > 0 "
                               "(the size of the soft one-hot embeddings)")
        if self.item_embedding_dim is not None and self.item_embedding_dim < 1:
            raise SessrecError(f"item_embedding_dim must be >= 1 (got {self.item_embedding_dim})")
        if self.embedding_dim_from_cardinality_multiplier <= 0:
            raise SessrecError(f"embedding_dim_from_cardinality_multiplier must be > 0 (got {self.embedding_dim_from_cardinality_multiplier})")
        for name in ("item_id_embeddings_init_std", "other_embeddings_init_std"):
            if getattr(self, name) < 0:
                raise SessrecError(f"{name} must be >= 0 (got {getattr(self, name)})")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise SessrecError(f"{name} must be one of {', '.join(map(str, allowed))} (got '{value}')")


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ExperimentConfig)


def _did_you_mean(name: str, fields: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _checked_init(init: Callable[..., None]) -> Callable[..., None]:
    """The dataclass constructor, whose misspelt keyword (``ExperimentConfig(d_modle=64)``) says which field was
    meant, as a YAML key or flag does."""
    @functools.wraps(init)
    def checked(self: ExperimentConfig, *args: Any, **kwargs: Any) -> None:
        names = {f.name for f in dataclasses.fields(ExperimentConfig)}
        for key in kwargs:
            if key not in names:
                meant = ALIASES.get(key)
                hint = f" (did you mean '{meant}'?)" if meant in names else _did_you_mean(key, names)
                raise TypeError(f"ExperimentConfig got an unexpected keyword argument '{key}'{hint}")
        init(self, *args, **kwargs)
    return checked


ExperimentConfig.__init__ = _checked_init(ExperimentConfig.__init__)  # type: ignore[method-assign]


def field_help() -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(ExperimentConfig)}


def base_type(hint: Any) -> tuple[type, bool]:
    """(underlying type, optional?) of a field annotation such as ``int | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return (typing.get_origin(hint) or hint), False


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    base, optional = base_type(hint)
    if value is None:
        if optional:
            return None
        raise SessrecError(f"{source}: '{name}' cannot be null")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif base is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy's integers too
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif base is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif base is str:
        if isinstance(value, (str, Path)):
            return str(value)
    elif base is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    elif base is dict:
        if isinstance(value, dict):
            return dict(value)
    raise SessrecError(f"{source}: '{name}' expects {base.__name__}, got {value!r}")


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float):  # others are left to PyYAML
                continue
            line = key_node.start_mark.line + 1
            if key in lines:
                raise _DuplicateKey(f"the key '{key}' is given twice (lines {lines[key]} and {line}); keep one")
            lines[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config, preset or search-space file: a mapping, each key once."""
    path = Path(path)
    if not path.is_file():
        raise SessrecError(f"config file not found: {path}")
    try:
        with reading(path):
            text = path.read_text()
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as e:
        raise SessrecError(f"config file {path}: {e}") from None
    except yaml.YAMLError as e:
        raise SessrecError(f"config file {path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SessrecError(f"config file {path}: expected a mapping of keys to values")
    return data
