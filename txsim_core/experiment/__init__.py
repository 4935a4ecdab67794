"""Experiments: train a network natively, on ideal and on non-ideal crossbars, and sweep
configuration keys, with resumable runs, metrics and plots (``txsim train``, ``txsim sweep``,
``txsim report``)."""

from txsim_core.experiment.config import (
    MODES,
    DataSettings,
    Experiment,
    ModelSettings,
    TrainSettings,
    load_experiment,
    parse_experiment,
)
from txsim_core.experiment.report import report
from txsim_core.experiment.runner import load_run_experiment, train_run
from txsim_core.experiment.sweep import make_trials, parse_param, run_sweep

__all__ = [
    "MODES",
    "DataSettings",
    "Experiment",
    "ModelSettings",
    "TrainSettings",
    "load_experiment",
    "load_run_experiment",
    "make_trials",
    "parse_experiment",
    "parse_param",
    "report",
    "run_sweep",
    "train_run",
]
