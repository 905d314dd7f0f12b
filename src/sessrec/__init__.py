"""sessrec: session-based recommendation with Transformers, evaluated incrementally over time."""

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

__version__ = "0.1.0"


def run_experiment(config: ExperimentConfig, **kwargs):
    """Run the incremental train/evaluate protocol (see :func:`sessrec.experiment.run_experiment`)."""
    from sessrec.experiment import run_experiment as _run

    return _run(config, **kwargs)


__all__ = ["ExperimentConfig", "SessrecError", "run_experiment", "__version__"]
