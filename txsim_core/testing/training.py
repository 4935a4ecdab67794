"""A small, real training run for tests: does a crossbar configuration learn?

Device, converter and solver plugins prove that their models train a network, not just that each
equation holds. :func:`digits_accuracy` trains a small MLP on scikit-learn's 8x8 digits (1,797
real handwritten digits, bundled with scikit-learn: nothing is downloaded) through
:func:`txsim_core.experiment.train_run` and returns the final test accuracy. Chance is 10%; a
working configuration reaches 70-95% in a few seconds on one CPU core::

    from txsim_core.testing.training import digits_accuracy
    assert digits_accuracy({"device": {"name": "reram"}, "update": {"name": "reram"}}) > 0.7
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from txsim_core.experiment import Experiment, parse_experiment, train_run


def digits_experiment(
    crossbar: Mapping[str, Any],
    *,
    epochs: int = 3,
    hidden: int = 32,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    mode: str = "nonideal",
    limit_train: int | None = None,
) -> Experiment:
    """The experiment of :func:`digits_accuracy`, e.g. for
    :func:`txsim_core.testing.replicas.replica_states`.

    Args:
        crossbar: the ``crossbar`` table of the configuration (as for ``convert``).
        epochs: training epochs.
        hidden: width of the hidden layer.
        lr: learning rate of the crossbar SGD.
        batch_size: minibatch size.
        seed: seeds weights, data order and every random model.
        mode: the one mode to train.
        limit_train: use only the first ``limit_train`` training digits (None: all 1,437).
    """
    return parse_experiment(
        {
            "model": {"name": "mlp", "hidden": [hidden]},
            "data": {"name": "digits", "limit_train": limit_train},
            "train": {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "modes": [mode],
            },
            "crossbar": dict(crossbar),
        }
    )


def digits_accuracy(crossbar: Mapping[str, Any], **settings: Any) -> float:
    """Final test accuracy (fraction) of an MLP 64-``hidden``-10 trained on the 8x8 digits
    (1,437 training digits; 360 are held out for testing).

    Args:
        crossbar: the ``crossbar`` table of the configuration (as for ``convert``).
        settings: as for :func:`digits_experiment` (``epochs``, ``hidden``, ``lr``,
            ``batch_size``, ``seed``, ``limit_train``, and ``mode``: ``"nonideal"`` trains on the
            configured crossbars, ``"native"`` and ``"ideal"`` give the references).
    """
    experiment = digits_experiment(crossbar, **settings)
    with tempfile.TemporaryDirectory(prefix="txsim-digits-") as folder:
        rows = train_run(experiment, Path(folder) / "run", progress=False, echo=lambda text: None)
    return float(rows[-1]["test_accuracy"])
