"""Data-parallel training for tests: do the replicas of a run keep one crossbar state?

Every model that changes the crossbar state (an update model, a device whose programming is
random) must do the same thing on every data-parallel replica when it is given the same request
and the same random stream: same shapes, same number of random draws, no draw that depends on a
replica's data. :func:`train_replicas` trains one mode of an experiment in ``nproc`` processes
on this machine (gloo, CPU) and returns each replica's final crossbar state, so that a test can
compare the replicas with each other and with a single-process run. For a plugin's own models,
:func:`replica_states` does it on the 8x8 digits in one line::

    from txsim_core.testing.replicas import differing_entries, replica_states

    states = replica_states({"device": {"name": "mydevice"}, "update": {"name": "mydevice"}})
    assert differing_entries(states) == []

``txsim train`` checks the same at every checkpoint and stops with
:class:`txsim_core.distributed.ReplicasDiverged` when replicas differ.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from txsim_core.distributed import crossbar_arrays
from txsim_core.experiment.config import Experiment
from txsim_core.experiment.parallel import joined_replicas, launch
from txsim_core.experiment.runner import check_experiment
from txsim_core.experiment.trainer import ModeTrainer
from txsim_core.testing.training import digits_experiment


def crossbar_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every crossbar layer's state by name: its buffers (ideal conductances, calibrated full
    scales, converter mismatch, solver state) and its random generator's state."""
    state = {}
    for name, array in crossbar_arrays(net):
        for buffer_name, buffer in array.named_buffers():
            state[f"{name}.{buffer_name}"] = buffer.detach().cpu().clone()
        state[f"{name}.generator"] = array.generator().get_state()
    return state


def train_mode(experiment: Experiment, mode: str, run_dir: Path) -> dict[str, torch.Tensor]:
    """Train ``mode`` of ``experiment`` (as one replica when launched as one) and return the
    final crossbar state, with the history of metrics under the key ``"history"`` as a tensor of
    (train loss, train accuracy, test accuracy) rows."""
    with joined_replicas(experiment.train.device) as replicas:
        splits, device = check_experiment(experiment)
        if replicas is not None:
            device = replicas.device
        trainer = ModeTrainer(
            experiment, mode, splits, run_dir, device, progress=False, replicas=replicas
        )
        history = trainer.run()
        state = crossbar_state(trainer.net)
    columns = ("train_loss", "train_accuracy", "test_accuracy")
    state["history"] = torch.tensor(
        [[row[c] for c in columns] for row in history], dtype=torch.float64
    )
    return state


def train_replicas(
    experiment: Experiment, mode: str, run_dir: Path, nproc: int = 2
) -> list[dict[str, torch.Tensor]]:
    """Train ``mode`` of ``experiment`` with ``nproc`` data-parallel replicas on the CPU.

    Returns:
        Each replica's :func:`train_mode` result, in rank order. Rank 0 writes its checkpoints
        to ``run_dir``.
    """
    return launch(nproc, train_mode, experiment, mode, run_dir)


def replica_states(
    crossbar: Mapping[str, Any],
    *,
    nproc: int = 2,
    epochs: int = 1,
    limit_train: int = 320,
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict[str, torch.Tensor]]:
    """Train the digits MLP of :func:`txsim_core.testing.training.digits_experiment` on the
    crossbars of ``crossbar`` with ``nproc`` replicas, and return each replica's final state.

    Args:
        crossbar: the ``crossbar`` table of the configuration.
        nproc: replicas.
        epochs: epochs over the first ``limit_train`` training digits.
        limit_train: training digits used.
        batch_size: the global minibatch size (each replica gets its share).
        seed: seeds weights, data order and every random model.
    """
    experiment = digits_experiment(
        crossbar, epochs=epochs, batch_size=batch_size, seed=seed, limit_train=limit_train
    )
    with tempfile.TemporaryDirectory(prefix="txsim-replicas-") as folder:
        return train_replicas(experiment, "nonideal", Path(folder) / "run", nproc=nproc)


def differing_entries(states: Sequence[dict[str, torch.Tensor]]) -> list[str]:
    """The names of the state entries that are not bit-identical on every replica."""
    return [
        name
        for name, tensor in states[0].items()
        if any(not torch.equal(tensor, other[name]) for other in states[1:])
    ]
