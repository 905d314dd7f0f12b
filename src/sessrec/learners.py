"""What the experiment loop trains and scores: a neural session model or a baseline, by name."""

from __future__ import annotations

from typing import Protocol

from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors
from sessrec.distributed import SINGLE, Group
from sessrec.errors import SessrecError
from sessrec.evaluation import Scorer
from sessrec.schema import Schema


class Learner(Scorer, Protocol):
    """Trained window by window; scores the item following each session prefix.

    Optional parts, looked up with ``hasattr`` by the experiment loop:

    * ``history``: a list the learner appends training records to (``{"step", "window",
      "loss", "lr"}``). The loop replaces it with a sink that writes each record to
      ``history.jsonl`` at once, so ``sessrec report`` sees the loss of a run still training.
    * ``known_items``: a boolean array by item id of the items ``score`` reads in a session, where
      it reads fewer than all (GRU4Rec's trained items, a kNN's stored ones): a recommendation
      names the others as unknown, as it names ids the catalog lacks.
    * ``scoring_names``: the features ``score`` reads, where they are fewer than ``input_names``
      (GRU4Rec reads the times to order its training sessions only): what a recommendation needs.
    * ``state_dict() -> dict`` and ``load_state_dict(state)``: checkpointing, as in PyTorch. The
      state is a nested dict of tensors, numbers, strings, None, lists and tuples (no other
      objects: checkpoints are safetensors plus JSON, never pickles). An optional top-level
      ``"model"`` entry holds what scoring needs (weights, counts); it is saved as
      ``model.safetensors`` and is all that ``Recommender.load`` passes back. Everything else is
      training state (optimizer moments, generators, step counters) that makes a resumed run
      continue exactly; ``load_state_dict`` must accept a state with only ``"model"``.
      A learner without these methods still works with ``--resume``: the resumed run rebuilds it
      and refits it on the earlier windows' training data (slower, and exact as long as its
      training is deterministic given the seeded global RNGs); it cannot be loaded for serving.
    * Stopping inside a window (SIGTERM, SIGINT; :mod:`sessrec.stopping`): a learner with
      ``state_dict()`` may raise :class:`sessrec.stopping.StopRequested` between two training steps
      once ``stop_requested()`` says so, if its ``state_dict()`` then holds what makes a later
      ``fit_window`` on the same window (after ``load_state_dict``) continue exactly, as
      :class:`sessrec.training.NeuralLearner` does. The evaluation of such a learner may also be
      stopped between batches, so ``score`` must draw no random numbers. Other learners run to
      the end of the window, where the run then stops.
    """

    input_names: list[str]  # features it reads

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Train on one window's sessions; returns statistics such as loss and sessions/s."""
        ...


def build_learner(cfg: ExperimentConfig, schema: Schema, group: Group = SINGLE) -> Learner:
    """The learner of ``cfg.model_type``; in a distributed run (``group``) a neural model trained with
    ``DistributedDataParallel`` (the baselines train in one process: they refuse such a run)."""
    from sessrec.baselines import BASELINES, refuse_params
    from sessrec.bodies import BODIES

    if cfg.model_type in BASELINES:
        if group.distributed:
            raise SessrecError(baseline_refusal(cfg.model_type))
        if cfg.loss_type != "cross_entropy":
            raise SessrecError(f"loss_type {cfg.loss_type} trains a neural model; baseline '{cfg.model_type}' has no training loss")
        if cfg.baseline_params:  # a baseline with parameters parses them as it is built
            refuse_params(cfg.model_type, cfg.baseline_params)
        return BASELINES[cfg.model_type](cfg, schema)
    if cfg.baseline_params:
        raise SessrecError(f"baseline_params is for the baselines ({', '.join(sorted(BASELINES))}); model_type '{cfg.model_type}' does not use it")
    if cfg.model_type in BODIES:
        from sessrec.training import NeuralLearner

        try:
            return NeuralLearner(cfg, schema, group)
        except RuntimeError as e:  # torch's, from deep inside a layer's constructor: the sizes it was given
            cause = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            if "allocate" in cause or "out of memory" in cause.lower():
                raise SessrecError(f"cannot build model_type {cfg.model_type}: out of memory ({cause}); its item table "
                                   f"alone is {schema.n_items:,} x {cfg.d_model} floats: lower d_model, n_layer or the "
                                   "item cardinality (the schema's int_domain max)") from None
            if "negative dimension" in cause:
                raise SessrecError(f"cannot build model_type {cfg.model_type}: a size is negative ({cause}); check "
                                   "model_config and the schema's int_domain") from None
            raise
    known = ", ".join(sorted(set(BODIES) | set(BASELINES)))
    raise SessrecError(f"unknown model_type '{cfg.model_type}' (choose from {known})")


def baseline_refusal(model_type: str) -> str:
    return (f"model_type {model_type} is a baseline: it trains in one process, not with DistributedDataParallel; "
            "run it without torchrun (plain `sessrec run`)")
