"""sessrec: session-based recommendation with Transformers, evaluated incrementally over time."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

if TYPE_CHECKING:
    from sessrec.experiment import ExperimentResult

__version__ = "0.1.0"


def run_experiment(config: ExperimentConfig, printer: Callable[[str], None] = print,
                   on_window: Callable[[int, dict[str, float]], None] | None = None) -> ExperimentResult:
    """Run the incremental train/evaluate protocol and write the result files (see
    :func:`sessrec.experiment.run_experiment`; imported on first call, so that ``import sessrec`` stays light).

    ``printer`` receives the progress lines (``lambda *_: None`` silences them); ``on_window(window, averages so
    far)`` is called after each evaluated window. The result has ``aot`` and ``pop_aot`` (averages over time of the
    model and of the most-popular ranking), ``metric(name)``, ``windows`` (one dict per evaluated window: ``index``,
    ``metrics``, ``pop``, ``train_windows``, ``n_train_sessions``, ``n_eval_sessions``, ...) and ``learner`` (the
    model as trained on the last window)."""
    from sessrec.experiment import run_experiment as _run

    return _run(config, printer=printer, on_window=on_window)


__all__ = ["ExperimentConfig", "SessrecError", "run_experiment", "__version__"]
