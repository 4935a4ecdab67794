"""Keep the crossbar state of data-parallel replicas identical (``torch.distributed``).

In data-parallel training every process (a *replica*) holds the whole network and trains on its
own share of each minibatch. A native network stays identical on every replica because
``DistributedDataParallel`` averages the gradients and every replica applies the same optimizer
step. A crossbar network holds more state, and three kinds of it need care:

1. **ADC full scales** calibrated from the currents seen (txsim_core.calibration): inside
   :func:`txsim_core.calibration.synchronized_calibration` every replica calibrates from the
   currents of all replicas.
2. **Random streams.** Each crossbar layer draws from its own generator both while computing
   (converter noise, in the forward and backward passes) and while writing (write noise,
   stochastic rounding of the update). Reads should be independent between replicas, writes
   identical. :func:`fork_random_streams`, called before the forward pass, gives every replica
   its own stream for the step; :func:`synchronize_random_streams`, called after the backward pass
   and before the optimizer step, gives every replica the stream of replica ``src``, so that the
   same averaged gradient becomes the same device update everywhere. A forward pass outside the
   training steps (an evaluation) draws converter noise too: fork before it and synchronize
   after it.
3. **Batch-norm statistics** (digital, per replica): :func:`average_batchnorm_statistics` averages
   the running statistics, e.g. before an evaluation or a checkpoint.

:func:`check_replicas_agree` verifies, with two small collectives, that every crossbar layer's
state (conductances, calibrated full scales, generator) is the same on all replicas.

A training step of one's own loop, under ``torchrun``::

    model = DistributedDataParallel(net, broadcast_buffers=False)
    with synchronized_calibration(torch.distributed.new_group()):
        for step, (x, y) in enumerate(my_share_of_each_minibatch):
            fork_random_streams(net, rank=torch.distributed.get_rank())
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            synchronize_random_streams(net)
            optimizer.step()                    # a txsim_core.optim.CrossbarSGD

``txsim train --nproc N`` does all of this (txsim_core.experiment).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.errors import TxsimError

__all__ = [
    "ReplicasDiverged",
    "average_batchnorm_statistics",
    "check_replicas_agree",
    "crossbar_arrays",
    "fork_random_streams",
    "synchronize_random_streams",
]

_GOLDEN = 0x9E3779B97F4A7C15
"""An odd 64-bit constant that spreads consecutive ranks over the seed space."""


class ReplicasDiverged(TxsimError):
    """The crossbar state differs between data-parallel replicas."""


def crossbar_arrays(model: torch.nn.Module) -> list[tuple[str, CrossbarArray]]:
    """Every crossbar layer's arrays in ``model``, with their module names, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, CrossbarArray)]


def _communication_device(group: Any) -> torch.device:
    """Where tensors of collectives on ``group`` must live (the GPU for NCCL)."""
    if dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fork_random_streams(model: torch.nn.Module, rank: int) -> None:
    """Give each crossbar layer of this replica a random stream of its own for the next step.

    Rank 0 keeps its stream; on every other rank each layer draws one seed from its
    (replica-synchronized) generator and reseeds it with that seed mixed with ``rank``. Replicas
    then draw independent converter noise for their shares of the minibatch, and a run without
    converter noise draws exactly the write noise of a single-process run. Call it before the
    forward pass; call :func:`synchronize_random_streams` before the update.

    Args:
        model: the network (or one replica's module inside ``DistributedDataParallel``).
        rank: this replica's rank.
    """
    if rank == 0:
        return
    for _, array in crossbar_arrays(model):
        generator = array.generator()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        generator.manual_seed((seed ^ (rank * _GOLDEN)) & (2**63 - 1))


def synchronize_random_streams(model: torch.nn.Module, group: Any = None, src: int = 0) -> None:
    """Set every crossbar layer's generator to replica ``src``'s (one broadcast for all layers).

    Call it after the backward pass and before the optimizer step, so that write noise and the
    stochastic rounding of the update are the same on every replica.

    Args:
        model: the network.
        group: the process group of the replicas; None is the default group.
        src: the rank whose streams the others adopt.
    """
    arrays = [array for _, array in crossbar_arrays(model)]
    if not arrays:
        return
    states = [array.generator().get_state() for array in arrays]
    flat = torch.cat(states).to(_communication_device(group))
    dist.broadcast(flat, src=src, group=group)
    for array, state in zip(arrays, flat.cpu().split([s.numel() for s in states]), strict=True):
        array.generator().set_state(state.clone())


def average_batchnorm_statistics(model: torch.nn.Module, group: Any = None) -> None:
    """Average the running mean and variance of every batch-norm layer over the replicas.

    Args:
        model: the network.
        group: the process group of the replicas; None is the default group.
    """
    buffers = [
        buffer
        for module in model.modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
        for buffer in (module.running_mean, module.running_var)
        if buffer is not None
    ]
    if not buffers:
        return
    flat = torch.cat([b.detach().double().reshape(-1) for b in buffers])
    flat = flat.to(_communication_device(group))
    dist.all_reduce(flat, group=group)
    flat = (flat / dist.get_world_size(group)).to(buffers[0].device)
    for buffer, part in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
        buffer.copy_(part.view_as(buffer))


def _fingerprints(arrays: list[CrossbarArray]) -> torch.Tensor:
    """Per layer: the sum and a position-weighted sum of its state (every buffer: conductances,
    calibrated full scales, solver state; and its random generator's state)."""
    rows = []
    for array in arrays:
        parts = [b.detach().reshape(-1).double().cpu() for b in array.buffers()]
        state = torch.cat([*parts, array.generator().get_state().double()])
        weights = torch.arange(1, state.numel() + 1, dtype=torch.float64).remainder_(977)
        rows.append(torch.stack([state.sum(), (state * weights).sum()]))
    return torch.stack(rows)


def check_replicas_agree(model: torch.nn.Module, group: Any = None) -> None:
    """Raise :class:`ReplicasDiverged` unless every crossbar layer's state (conductances,
    calibrated full scales, random stream) agrees on all replicas (compared through fingerprints:
    sums and position-weighted sums).

    Args:
        model: the network.
        group: the process group of the replicas; None is the default group.
    """
    named = crossbar_arrays(model)
    if not named:
        return
    mine = _fingerprints([array for _, array in named]).to(_communication_device(group))
    largest, smallest = mine.clone(), -mine
    dist.all_reduce(largest, op=dist.ReduceOp.MAX, group=group)
    dist.all_reduce(smallest, op=dist.ReduceOp.MAX, group=group)
    differs = (largest != -smallest).any(dim=1).cpu()
    if differs.any():
        names = [name for (name, _), bad in zip(named, differs.tolist(), strict=True) if bad]
        raise ReplicasDiverged(
            f"Expected identical crossbar state on every replica, but layers {names} differ "
            "(conductances, calibrations or random streams): a model drew a different number of "
            "random numbers on some replica, the gradients were not averaged before the update, "
            "or an ADC calibrated outside txsim_core.calibration.synchronized_calibration."
        )
