"""Search spaces: the paper's, per algorithm family (Online Appendix C), or a user's YAML file.

A space maps config keys to distributions. A key is an :class:`~sessrec.config.ExperimentConfig`
field (``learning_rate``) or, for a baseline, ``baseline_params.<name>`` (``baseline_params.k``).
The YAML form of a space file (``sessrec tune --space FILE``; ``sessrec tune --print-space`` writes
the default one in this form)::

    learning_rate: {type: log_uniform, low: 1.0e-4, high: 1.0e-2}
    d_model: {type: int, low: 64, high: 448, step: 64}
    dropout: {type: discrete_uniform, low: 0.0, high: 0.5, step: 0.1}
    n_head: {type: categorical, choices: [1, 2, 4, 8, 16]}

``int`` and ``discrete_uniform`` are inclusive grids (``step`` defaults to 1 for ``int``),
``uniform`` and ``log_uniform`` continuous ranges. A space file replaces the default space as a
whole: what it lists is what is tuned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sessrec.config import ExperimentConfig, load_yaml
from sessrec.errors import SessrecError

KINDS = ("int", "discrete_uniform", "uniform", "log_uniform", "categorical")
BASELINE_PREFIX = "baseline_params."
# Spellings of the appendix and of Optuna's old API accepted in space files.
_KIND_ALIASES = {"int_uniform": "int", "discrete": "discrete_uniform", "float": "uniform", "loguniform": "log_uniform",
                 "float_uniform": "uniform"}


def scalar(value: Any) -> Any:
    """A list of one value as that value (GRU4Rec's ``layers: [100]``, one layer of 100): what a space's number
    stands for."""
    return value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value


@dataclass(frozen=True)
class Param:
    """One tuned key and its distribution."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """Draw a value from an Optuna trial."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        if self.kind == "discrete_uniform":
            return self.tidy(trial.suggest_float(self.name, self.low, self.high, step=self.step))
        if self.kind == "uniform":
            return trial.suggest_float(self.name, self.low, self.high)
        if self.kind == "log_uniform":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        return trial.suggest_categorical(self.name, list(self.choices))

    def tidy(self, value: Any) -> Any:
        """A grid value without the float noise of ``low + k * step`` (0.30000000000000004 → 0.3), as the trial
        used it; Optuna stores the raw one."""
        return round(value, 10) if self.kind == "discrete_uniform" and isinstance(value, float) else value

    def snap(self, value: Any) -> Any | None:
        """The value of this distribution nearest to ``value`` (None if it has no near value):
        used to start a study from a known configuration. A list of one number is that number (GRU4Rec's
        ``layers: [100]``, one layer)."""
        value = scalar(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value if self.kind == "categorical" and value in self.choices else None
        if self.kind == "categorical":  # a number: the nearest numeric choice
            numbers = [c for c in self.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
            return min(numbers, key=lambda c: abs(c - value)) if numbers else None
        v = min(max(float(value), self.low), self.high)
        if self.kind in ("int", "discrete_uniform"):
            step = self.step or 1
            v = self.low + round((v - self.low) / step) * step
            v = min(v, self.high)
            return int(round(v)) if self.kind == "int" else round(v, 10)
        return v

    def to_yaml_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": self.kind, "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        return out

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        step = f" step {self.step:g}" if self.step is not None else ""
        return f"{self.name} {self.kind} [{self.low:g}, {self.high:g}]{step}"


def _i(name: str, low: int, high: int, step: int = 1) -> Param:
    return Param(name, "int", low, high, step)


def _d(name: str, low: float, high: float, step: float) -> Param:
    return Param(name, "discrete_uniform", low, high, step)


def _log(name: str, low: float, high: float) -> Param:
    return Param(name, "log_uniform", low, high)


def _c(name: str, *choices: Any) -> Param:
    return Param(name, "categorical", choices=tuple(choices))


# ---- the paper's spaces (appendix C, Tables 2-4; shared/reference/paper_search_spaces.md) -------------
HEAD_CHOICES = (1, 2, 4, 8, 16)
_TRANSFORMER = [
    _i("d_model", 64, 448, 64), _i("item_embedding_dim", 64, 448, 64), _i("n_layer", 1, 4),
    _c("n_head", *HEAD_CHOICES), _d("input_dropout", 0.0, 0.5, 0.1), _d("dropout", 0.0, 0.5, 0.1),
    _log("learning_rate", 1e-4, 1e-2), _log("weight_decay", 1e-6, 1e-3),
    _i("per_device_train_batch_size", 128, 512, 64), _d("label_smoothing", 0.0, 0.9, 0.1),
    _d("item_id_embeddings_init_std", 0.01, 0.15, 0.02),
]
_SSE = _d("stochastic_shared_embeddings_replacement_prob", 0.0, 0.1, 0.02)
# The appendix's masking ranges start at 0, which masks nothing; sessrec needs a probability > 0.
_MLM_P = _d("mlm_probability", 0.1, 0.7, 0.1)
_TASK = {
    "clm": [_SSE],
    "mlm": [_SSE, _MLM_P],
    # e-commerce ranges; the news data sets used plm_probability 0.4-0.8 and spans of 1-4
    "plm": [_d("plm_probability", 0.1, 0.7, 0.1), _i("plm_max_span_length", 2, 6)],
    "rtd": [_c("rtd_discriminator_loss_weight", 1, 10, 20, 30, 40, 50), _MLM_P],
}
_SIDE_INFO = [_d("other_embeddings_init_std", 0.005, 0.1, 0.005), _i("embedding_dim_from_cardinality_multiplier", 1, 10)]
_SOFT_ONE_HOT = [_i("numeric_features_project_to_embedding_dim", 5, 55, 10),
                 _i("numeric_features_soft_one_hot_encoding_num_embeddings", 5, 55, 10)]
_NO_HEADS = {"gru", "lstm"}  # recurrent bodies: no attention heads
# Losses over sampled negatives (not in the paper): their own knobs; label smoothing is a softmax's only.
_NEGATIVES = _c("num_negatives", 64, 128, 256, 512)
_LOSS = {"gbce": [_d("gbce_t", 0.0, 1.0, 0.05), _NEGATIVES],
         "bpr_max": [_d("bpr_max_reg", 0.0, 2.0, 0.25), _NEGATIVES]}

# The settings the appendix fixes for every Transformer/GRU group; a tuning run starts from them
# unless the user sets the key. (Its tf_out_activation, inp_merge, schedule, eval batch and loss
# are sessrec's defaults already.)
PAPER_FIXED = {"num_train_epochs": 10.0, "layer_norm_featurewise": True, "layer_norm_all_features": False,
               "hidden_act": "gelu", "warmup_steps": 0}
PAPER_FIXED_BY_TASK = {"rtd": {"rtd_tied_generator": True, "rtd_sample_from_batch": True, "rtd_use_batch_interaction": False}}
# GRU4Rec: the paper's FT mode (a new model per window, trained on all past windows: §4.1.5); n_epochs 10 is the default
PAPER_FIXED_BY_MODEL = {"albert": {"num_hidden_groups": -1, "inner_group_num": 1}, "gru4rec": {"no_incremental_training": True}}


def _lambdas(mean_length: float) -> tuple[float, ...]:
    """STAN's lambda grid: {1e-5, L/8, L/4, L/2, L, 2L} with L the mean session length."""
    return (1e-5, *(round(mean_length * f, 6) for f in (0.125, 0.25, 0.5, 1.0, 2.0)))


def _baseline_space(model: str, mean_length: float) -> list[Param]:
    b = BASELINE_PREFIX
    if model == "vsknn":
        weights = ("same", "div", "linear", "quadratic", "log")
        return [_i(b + "k", 50, 1500, 50), _i(b + "sample_size", 500, 10000, 500), _c(b + "weighting", *weights),
                _c(b + "weighting_score", *weights), _c(b + "idf_weighting", False, 1, 2, 5, 10),
                _c(b + "remind", True, False), _c(b + "push_reminders", True, False)]
    if model in ("stan", "vstan"):
        lam = _lambdas(mean_length)
        space = [_i(b + "k", 50, 2000, 50), _i(b + "sample_size", 500, 10000, 500), _c(b + "lambda_spw", *lam),
                 _c(b + "lambda_snh", 2.5, 5, 10, 20, 40, 80, 100), _c(b + "lambda_inh", *lam), _c(b + "remind", True, False)]
        if model == "vstan":
            space += [_c(b + "lambda_ipw", *lam), _c(b + "lambda_idf", False, 1, 2, 5, 10)]
        return space
    if model == "gru4rec":
        return [_i(b + "batch_size", 128, 512, 64), _log(b + "learning_rate", 1e-4, 0.1),
                _d(b + "dropout_p_hidden", 0.0, 0.5, 0.1), _i(b + "layers", 64, 448, 64), _i(b + "embedding", 0, 448, 64),
                Param(b + "momentum", "uniform", 0.0, 0.5), _c(b + "constrained_embedding", True, False),
                _c(b + "final_act", "elu-0.5", "linear", "tanh"), _c(b + "loss", "bpr-max", "top1-max")]
    if model == "pop":
        raise SessrecError("model_type pop has no hyper-parameters to tune")
    raise SessrecError(f"no default search space for baseline '{model}'; give one with --space FILE")


@dataclass
class SearchSpace:
    """An ordered set of tuned keys."""

    params: list[Param]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SessrecError(f"search space: {', '.join(dup)} listed twice")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def without(self, fixed: Iterable[str]) -> SearchSpace:
        """The space minus the keys the user fixed (a flag or config key given for them)."""
        drop = set(fixed)
        return SearchSpace([p for p in self.params if p.name not in drop])

    def with_heads_dividing(self, d_model: int) -> SearchSpace:
        """The space with only the ``n_head`` choices that divide a fixed ``d_model`` (the paper's choices reach 16,
        which a ``--d-model 40`` or ``100`` cannot be split into: every such trial would fail)."""
        return SearchSpace([dataclasses.replace(p, choices=tuple(c for c in p.choices if d_model % c == 0))
                            if p.name == "n_head" and p.kind == "categorical" else p for p in self.params])

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.params}

    def used(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A stored trial's parameters as the trial used them (see :meth:`Param.tidy`)."""
        by_name = {p.name: p for p in self.params}
        return {k: by_name[k].tidy(v) if k in by_name else v for k, v in params.items()}

    def snap(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (a config's flat key -> value) moved onto this space, for ``enqueue_trial``."""
        out = {}
        for p in self.params:
            if p.name in values:
                v = p.snap(values[p.name])
                if v is not None:
                    out[p.name] = v
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump({p.name: p.to_yaml_dict() for p in self.params}, sort_keys=False)

    def fingerprint(self) -> list[list[Any]]:
        """A JSON-able description, stored with a study so a later run can tell whether it changed."""
        return [[p.name, *p.to_yaml_dict().values()] for p in self.params]


def default_space(cfg: ExperimentConfig, mean_session_length: float = 5.0) -> SearchSpace:
    """The paper's search space for ``cfg``'s algorithm family (model, objective, side information).

    Every attention body (``sasrec``, ``hstu`` and the paper's) gets the Transformer space, heads
    included; a loss over sampled negatives (``gbce``, ``bpr_max``) adds its parameters and drops
    label smoothing."""
    from sessrec.baselines import BASELINES

    if cfg.model_type in BASELINES:
        return SearchSpace(_baseline_space(cfg.model_type, mean_session_length))
    params = [p for p in _TRANSFORMER if not (p.name == "n_head" and cfg.model_type in _NO_HEADS)
              and not (p.name == "label_smoothing" and cfg.loss_type in _LOSS)]
    params += _TASK[cfg.task] + _LOSS.get(cfg.loss_type, [])
    if cfg.use_side_information_features:
        params += _SIDE_INFO
        if cfg.numeric_features_soft_one_hot_encoding_num_embeddings > 0:
            params += _SOFT_ONE_HOT
    return SearchSpace(params)


def paper_fixed(cfg: ExperimentConfig) -> dict[str, Any]:
    """The appendix's fixed settings for ``cfg``'s family (for a baseline, only GRU4Rec's training mode)."""
    from sessrec.baselines import BASELINES

    if cfg.model_type in BASELINES:
        return dict(PAPER_FIXED_BY_MODEL.get(cfg.model_type, {}))
    return {**PAPER_FIXED, **PAPER_FIXED_BY_TASK.get(cfg.task, {}), **PAPER_FIXED_BY_MODEL.get(cfg.model_type, {})}


def load_space(path: str | Path, cfg: ExperimentConfig) -> SearchSpace:
    """A space file, checked: known keys, known kinds, non-empty ranges, values of the key's type."""
    path = str(path)
    data = load_yaml(path)
    params = [_parse_param(key, spec, f"{path}: '{key}'") for key, spec in data.items()]
    if not params:
        raise SessrecError(f"{path}: the search space is empty")
    space = SearchSpace(params)
    check_space(space, cfg, path)
    return space


def _parse_param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise SessrecError(f"{where}: expected a mapping with 'type' ({', '.join(KINDS)}), got {spec!r}")
    kind = _KIND_ALIASES.get(str(spec["type"]), str(spec["type"]))
    if kind not in KINDS:
        raise SessrecError(f"{where}: unknown type '{spec['type']}' (choose from {', '.join(KINDS)})")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "step"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise SessrecError(f"{where}: unknown field(s) {', '.join(extra)} for type {kind} (allowed: {', '.join(sorted(allowed))})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SessrecError(f"{where}: categorical needs a non-empty list 'choices'")
        return Param(key, kind, choices=tuple(choices))
    try:
        low, high = float(spec["low"]), float(spec["high"])
        step = None if spec.get("step") is None else float(spec["step"])
    except KeyError as e:
        raise SessrecError(f"{where}: {kind} needs '{e.args[0]}'") from None
    except (TypeError, ValueError):
        raise SessrecError(f"{where}: low, high and step must be numbers (got {dict(spec)})") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SessrecError(f"{where}: empty range [{spec['low']}, {spec['high']}] (low must be <= high)")
    if step is not None and step <= 0:
        raise SessrecError(f"{where}: step must be > 0 (got {spec['step']})")
    if kind == "int":
        if not (low.is_integer() and high.is_integer() and float(step or 1).is_integer()):
            raise SessrecError(f"{where}: int needs whole low, high and step (got {dict(spec)})")
        if step is None:
            step = 1.0
        _check_grid(low, high, step, where)
        return Param(key, kind, int(low), int(high), int(step))
    if kind == "discrete_uniform" and step is None:
        raise SessrecError(f"{where}: discrete_uniform needs 'step'")
    if kind == "discrete_uniform":
        _check_grid(low, high, step, where)
    if kind in ("uniform", "log_uniform") and step is not None:
        raise SessrecError(f"{where}: {kind} is continuous and takes no 'step' (use discrete_uniform)")
    if kind == "log_uniform" and low <= 0:
        raise SessrecError(f"{where}: log_uniform needs low > 0 (got {spec['low']})")
    return Param(key, kind, low, high, step)


def _check_grid(low: float, high: float, step: float, where: str) -> None:
    """``high`` is on the grid ``low + k * step`` (else Optuna narrows the range with a warning at every trial)."""
    k = (high - low) / step
    if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
        raise SessrecError(f"{where}: high {high:g} is not low {low:g} plus a multiple of step {step:g} (the grid "
                           f"would end at {low + math.floor(k) * step:g}); make high - low a multiple of step")


def check_space(space: SearchSpace, cfg: ExperimentConfig, source: str) -> None:
    """Every key exists for this model, and every value the space can draw has the key's type."""
    from sessrec.baselines import BASELINES

    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    # each value is checked with every other key at its first value (keys can depend on each other)
    context = {p.name: (p.choices[0] if p.kind == "categorical" else int(p.low) if p.kind == "int" else p.low)
               for p in space.params if p.name in fields and p.name not in _NOT_TUNABLE}
    for p in space.params:
        where = f"{source}: '{p.name}'"
        if p.name.startswith(BASELINE_PREFIX):
            if cfg.model_type not in BASELINES:
                raise SessrecError(f"{where} is a baseline parameter, but model_type is {cfg.model_type}")
            _check_values(p, lambda v, p=p: _baseline_check(cfg, p.name[len(BASELINE_PREFIX):], v), where)
        elif p.name not in fields:
            import difflib

            close = difflib.get_close_matches(p.name, sorted(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SessrecError(f"{where} is not a config key{hint}; keys are the 'sessrec run' options with underscores, "
                               "or baseline_params.<name> for a baseline")
        elif p.name in _NOT_TUNABLE:
            raise SessrecError(f"{where} cannot be tuned: it {_NOT_TUNABLE[p.name]}")
        else:
            _check_values(p, lambda v, p=p: _model_check(apply(cfg, {**context, p.name: v}, source).validate(), p.name,
                                                         alone=not _BODY_SHAPE.get(p.name, set()) & set(space.names)),
                          where)


# Keys that shape the sequence model, and those they must fit (d_model divisible by n_head): a value of one is checked
# by building the body while its partners are fixed (with two partners tuned, only some pairs fit); n_layer fits any
# head count, so a tuned n_layer leaves n_head checked
_BODY_SHAPE = {"d_model": {"n_head", "model_config"}, "n_head": {"d_model", "model_config"}, "n_layer": {"model_config"},
               "model_config": {"d_model", "n_head", "n_layer"}}


def _model_check(cfg: ExperimentConfig, name: str, alone: bool) -> None:
    """A key that cannot act with this algorithm is refused; a body-shaping key, tuned alone, must make a body."""
    inert = [line for line in cfg.inert_options() if line.startswith(f"{name} has no effect")]
    if inert:
        raise SessrecError(inert[0])
    if name == "hidden_act":  # checked where the body is built (a string of transformers' ACT2FN names)
        from sessrec.features import activation

        activation(cfg.hidden_act)
    if alone and name in _BODY_SHAPE:
        from sessrec.bodies.registry import build_body

        build_body(cfg)


# Keys whose change would change what the objective measures, not how well a model does.
_NOT_TUNABLE = {
    "data_path": "selects the data", "features_schema_path": "selects the data",
    "start_time_window_index": "selects the windows (use --tune-windows)",
    "final_time_window_index": "selects the windows (use --tune-windows)", "eval_on_test_set": "selects the split",
    "top_ks": "selects the metric", "eval_on_last_item_seq_only": "changes what is evaluated",
    "session_seq_length_max": "changes what is evaluated (sessions are cut after that many items: other targets)",
    "compute_metrics_each_n_steps": "changes what is evaluated (which batches are scored)",
    "model_type": "is the algorithm (tune each one in its own study)", "task": "is the algorithm (tune each one in its own study)",
    "output_dir": "is where results go", "seed": "is the source of randomness (the final runs use several seeds)",
    "resume": "is an operational switch", "overwrite_output_dir": "is an operational switch",
}


def _check_values(p: Param, check: Any, where: str) -> None:
    values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
    if p.kind == "int":
        values = [int(v) for v in values]
    for v in values:
        try:
            check(v)
        except SessrecError as e:
            raise SessrecError(f"{where}: value {v!r} is not valid ({str(e).split(': ', 1)[-1]})") from None


def _baseline_check(cfg: ExperimentConfig, name: str, value: Any) -> None:
    from sessrec.baselines import parse_baseline_params

    parse_baseline_params(cfg.model_type, {**cfg.baseline_params, name: value})


def apply(cfg: ExperimentConfig, values: Mapping[str, Any], source: str = "search space") -> ExperimentConfig:
    """A copy of ``cfg`` with the drawn ``values`` set (``baseline_params.<name>`` into the dict)."""
    plain = {k: v for k, v in values.items() if not k.startswith(BASELINE_PREFIX)}
    baseline = {k[len(BASELINE_PREFIX):]: v for k, v in values.items() if k.startswith(BASELINE_PREFIX)}
    out = dataclasses.replace(cfg, baseline_params={**cfg.baseline_params, **baseline},
                              model_config=dict(cfg.model_config), top_ks=list(cfg.top_ks))
    return out.update(plain, source)


def flat_values(cfg: ExperimentConfig) -> dict[str, Any]:
    """``cfg`` as the flat keys a space uses (``baseline_params.k`` for baseline parameters)."""
    out = {k: v for k, v in cfg.to_dict().items() if k != "baseline_params"}
    out.update({BASELINE_PREFIX + k: v for k, v in cfg.baseline_params.items()})
    if out.get("item_embedding_dim") is None:
        out["item_embedding_dim"] = cfg.d_model
    return out
