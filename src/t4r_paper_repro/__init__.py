"""The command lines of the Transformers4Rec paper (RecSys'21), run unchanged by sessrec.

* ``python -m t4r_paper_repro.transf_exp_main ARGS``: the Transformer and GRU commands (the
  released example's ``transf_exp_main`` and the original ``hf4rec.recsys_main``);
* ``python -m t4r_paper_repro.baselines_main ARGS``: the baseline commands (the original
  ``hf4rec.baselines.recsys_baselines_main``).

Both only translate arguments (``arguments.py``) into one :class:`sessrec.config.ExperimentConfig`
and call :func:`sessrec.experiment.run_experiment`: no second implementation of anything.
"""
