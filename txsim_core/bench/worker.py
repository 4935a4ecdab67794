"""One configuration measured in a process of its own: ``python -m txsim_core.bench``.

The job comes as one JSON object on stdin (see :func:`measure`), the result goes to stdout as one
line that starts with :data:`RESULT_PREFIX`. A fresh process per configuration makes its peak
memory its own.

In every timed iteration the worker runs, one after another on the same minibatch: a training
step of the configuration, a training step of the native network (the reference of
``ratio_vs_native``; not for ``native`` itself), the matmul floor of the configuration
(:mod:`txsim_core.bench.floor`) and, for a circuit solver other than ``ideal``, one refresh of
the effective conductances of every array (:func:`solver_seconds`). Interleaving keeps the
ratios fair on a shared machine whose load changes from second to second. The peak memory is
that of the configuration's own steps (:class:`StepMemory`): the floor's operands can be larger
than anything the configuration allocates.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import attrs
import torch

from txsim_core.bench.configs import CONFIGS, NETWORKS, BenchConfig, BenchNetwork
from txsim_core.bench.floor import (
    LayerCall,
    Product,
    record_layer_calls,
    step_products,
    time_products,
)
from txsim_core.crossbar.array import DIRECTIONS, CrossbarArray, Direction

RESULT_PREFIX = "TXSIM_BENCH_RESULT "
"""Marks the result line on the worker's stdout."""

PROGRESS_PREFIX = "TXSIM_BENCH_PROGRESS "
"""Marks a progress line on the worker's stderr."""


class Progress:
    """Progress lines for the runner, which shows them as they come: a batch is reported when
    at least ``every`` seconds have passed since the last line (so that a slow configuration
    shows every batch and a fast one stays quiet).

    Args:
        where: ``network/config``, the start of every line.
        every: the least seconds between two lines.
    """

    def __init__(self, where: str, every: float = 5.0) -> None:
        self.where, self.every = where, every
        self.last = time.perf_counter()

    def batch(self, text: str) -> None:
        """Report ``text`` if it is time."""
        now = time.perf_counter()
        if now - self.last >= self.every:
            print(f"{PROGRESS_PREFIX}{self.where}: {text}", file=sys.stderr, flush=True)
            self.last = now


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepMemory:
    """The peak memory of the configuration's own training steps, not of the native steps and
    the floor that run beside them in the same process.

    On CUDA: ``torch.cuda.max_memory_allocated``, reset before each step. On Linux: the
    process's peak resident set (``VmHWM``), reset before each step by writing 5 to
    ``/proc/self/clear_refs``; it includes the process's baseline (Python, torch, the data).
    Elsewhere, or where the reset is refused: ``ru_maxrss``, the peak of the whole process.

    Attributes:
        peak_mb: the largest peak of the steps run through :meth:`step`, in MiB.
        kind: how it was measured.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0
        if device.type == "cuda":
            self.kind = "cuda max_memory_allocated per step"
        elif self._reset_rss():
            self.kind = "VmHWM per step"
        else:
            self.kind = "ru_maxrss (whole process)"

    def step(self, run: Callable[[], Any]) -> Any:
        """Run one training step and fold its peak into :attr:`peak_mb`."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind.startswith("VmHWM"):
            self._reset_rss()
        result = run()
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.kind.startswith("VmHWM"):
            peak = self._status_mb("VmHWM:")
        else:
            peak = peak_rss_mb()
        self.peak_mb = max(self.peak_mb, peak)
        return result

    def resident_mb(self) -> float:
        """The memory in use now, measured as :attr:`peak_mb` is (``VmRSS`` on Linux)."""
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / 2**20
        if self.kind.startswith("VmHWM"):
            return self._status_mb("VmRSS:")
        return peak_rss_mb()

    @staticmethod
    def _reset_rss() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return StepMemory._status_mb("VmHWM:") > 0
        except OSError:
            return False

    @staticmethod
    def _status_mb(key: str) -> float:
        """A ``/proc/self/status`` entry (in kB there) in MiB; 0 where it is missing."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) / 2**10
        except OSError:
            pass
        return 0.0


class BatchSource:
    """The minibatches of a network's data, by index (``i`` past an epoch continues in the next).

    ``mnist-5k``: the training split in the order of :func:`txsim_core.experiment.trainer.
    epoch_order` (as ``txsim train`` draws it). ``random``: normal inputs and uniform labels,
    drawn from a generator seeded by the index.
    """

    def __init__(
        self, network: BenchNetwork, batch_size: int, device: torch.device, seed: int
    ) -> None:
        self.network, self.batch_size, self.device, self.seed = network, batch_size, device, seed
        self.per_epoch = network.batches_per_epoch(batch_size)
        self.split: Any = None
        if network.data == "mnist-5k":
            from txsim_core.data import load_dataset

            splits = load_dataset("mnist-5k", seed=seed)
            self.split = splits.train.to(device)
            self.per_epoch = math.ceil(len(self.split) / batch_size)
        self._orders: dict[int, list[torch.Tensor]] = {}

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``i``-th minibatch ``(x, y)`` on the device."""
        epoch, index = divmod(i, self.per_epoch)
        if self.split is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            shape = (self.batch_size, *self.network.input_shape)
            x = torch.randn(shape, generator=generator)
            y = torch.randint(self.network.num_classes, (self.batch_size,), generator=generator)
            return x.to(self.device), y.to(self.device)
        if epoch not in self._orders:
            from txsim_core.experiment.trainer import epoch_order

            order = epoch_order(self.seed, epoch, len(self.split))
            self._orders = {epoch: list(order.split(self.batch_size))}
        x, y = self.split.batch(self._orders[epoch][index])
        return x.to(self.device), y.to(self.device)


def build_txsim(
    config: BenchConfig, network: BenchNetwork, device: torch.device, seed: int, lr: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The network of a txsim (or native) configuration and its optimizer."""
    import txsim_core
    from txsim_core.zoo import build_network

    torch.manual_seed(seed)
    net = build_network(network.name, network.input_shape, network.num_classes)
    if config.crossbar is None:
        net = net.to(device)
        return net, torch.optim.SGD(net.parameters(), lr=lr)
    net = txsim_core.convert(net, config.crossbar, seed=seed).to(device)
    return net, txsim_core.CrossbarSGD(net.parameters(), lr=lr)


def build_aihwkit(
    network: BenchNetwork, device: torch.device, seed: int, lr: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The network converted by aihwkit with ``SingleRPUConfig(device=SoftBoundsDevice())``
    (its default IO: about 7-bit DAC, 9-bit ADC, output noise) and ``AnalogSGD``."""
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.configs import SingleRPUConfig

    try:
        from aihwkit.simulator.configs import SoftBoundsDevice
    except ImportError:  # older releases
        from aihwkit.simulator.configs.devices import SoftBoundsDevice

    from txsim_core.zoo import build_network

    torch.manual_seed(seed)
    net = build_network(network.name, network.input_shape, network.num_classes)
    net = convert_to_analog(net, SingleRPUConfig(device=SoftBoundsDevice())).to(device)
    optimizer = AnalogSGD(net.parameters(), lr=lr)
    optimizer.regroup_param_groups(net)
    return net, optimizer


def make_step(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """A function that trains on one minibatch and returns its wall time in seconds."""
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        _sync(device)
        start = time.perf_counter()
        loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        return time.perf_counter() - start

    return step


def solved_arrays(calls: list[LayerCall]) -> list[tuple[CrossbarArray, tuple[Direction, ...]]]:
    """The crossbar arrays with a circuit solver (not ``ideal``) and the directions a step solves:
    forward, and backward where the layer's input needs a gradient."""
    result = []
    for call in calls:
        array = getattr(call.module, "crossbar", None)
        if isinstance(array, CrossbarArray) and not array.solver.is_exact:
            directions = DIRECTIONS if call.needs_input_grad else DIRECTIONS[:1]
            result.append((array, tuple(directions)))
    return result


@torch.no_grad()
def solver_seconds(
    arrays: list[tuple[CrossbarArray, tuple[Direction, ...]]], device: torch.device
) -> float:
    """Seconds of one refresh of every solved array: ``solver.effective_conductance`` of each
    direction a step uses, on a copy of the realized conductances of all the layer's arrays (the
    same tensor for both directions, as the layer passes them, so that ``fcm`` solves its network
    once for both)."""
    total = 0.0
    for array, directions in arrays:
        g = array.realized().clone()
        _sync(device)
        start = time.perf_counter()
        for direction in directions:
            array.solver.effective_conductance(g, direction)
        _sync(device)
        total += time.perf_counter() - start
    return total


def _solve_state(arrays: list[tuple[CrossbarArray, tuple[Direction, ...]]]) -> list[Any]:
    return [array.solved_forward_g for array, _ in arrays]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _refresh_every(config: BenchConfig) -> int:
    if config.crossbar is None:
        return 1
    solver = config.crossbar["crossbar"].get("solver", {})
    return int(solver.get("refresh_every", 1)) if isinstance(solver, dict) else 1


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration on one network.

    Args:
        job: ``config`` and ``network`` (names), ``batch_size``, ``batches`` (timed batches; None:
            the network's default for the configuration), ``warmup`` (untimed batches, at least
            1), ``threads`` (torch threads), ``device``, ``seed``, ``lr``; optional
            ``progress_every``: the least seconds between two progress lines (default 5).

    Returns:
        The result row (see :func:`txsim_core.bench.run_benchmark`).
    """
    config, network = CONFIGS[job["config"]], NETWORKS[job["network"]]
    device = torch.device(job["device"])
    torch.set_num_threads(int(job["threads"]))
    seed, lr, batch_size = int(job["seed"]), float(job["lr"]), int(job["batch_size"])
    warmup = max(1, int(job["warmup"]))
    load_before = os.getloadavg()[0]

    source = BatchSource(network, batch_size, device, seed)
    per_epoch = source.per_epoch
    memory = StepMemory(device)
    baseline_mb = memory.resident_mb()

    if config.framework == "aihwkit":
        net, optimizer = build_aihwkit(network, device, seed, lr)
    else:
        net, optimizer = build_txsim(config, network, device, seed, lr)
    train_step = make_step(net, optimizer, device)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(memory.step(lambda: train_step(x, y)))

    native_step = None
    if config.name != "native":
        native_net, native_optimizer = build_txsim(CONFIGS["native"], network, device, seed, lr)
        native_step = make_step(native_net, native_optimizer, device)

    # warm-up; the first batch also records what every layer computes, for the floor
    progress = Progress(f"{network.name}/{config.name}", float(job.get("progress_every", 5.0)))
    x, y = source.batch(0)
    calls: list[LayerCall] | None = None
    if config.framework == "txsim":
        calls = record_layer_calls(net, lambda: step(x, y))
    else:  # another simulator's layers: no floor
        step(x, y)
    if native_step is not None:
        native_step(x, y)
    progress.batch(f"warm-up batch 1/{warmup} done")
    for i in range(1, warmup):
        x, y = source.batch(i)
        seconds = step(x, y)
        if native_step is not None:
            native_step(x, y)
        progress.batch(f"warm-up batch {i + 1}/{warmup}: {seconds:.2f} s")
    products: list[Product] | None = None if calls is None else step_products(calls)
    # the floor counts every DAC pass; the layers leave out those that drive no row
    every_pass = (
        None if calls is None else step_products([attrs.evolve(c, passes={}) for c in calls])
    )
    if every_pass == products:
        every_pass = None
    arrays = solved_arrays(calls or [])
    refresh_every = _refresh_every(config)
    dtype = next(net.parameters()).dtype

    fast, slow = network.batches
    target = job["batches"] if job["batches"] is not None else (slow if config.slow else fast)
    target = per_epoch if target is None else int(target)
    # a solver refreshed every R > 1 batches: time until one batch with a solve is in the window
    extra = refresh_every if arrays and refresh_every > 1 else 0
    plain: list[float] = []
    solving: list[float] = []
    native: list[float] = []
    floor: list[float] = []
    floor_every_pass: list[float] = []
    solver: list[float] = []
    i = warmup
    while len(plain) + len(solving) < target or (
        extra and not solving and i < warmup + target + extra
    ):
        x, y = source.batch(i)
        before = _solve_state(arrays)
        seconds = step(x, y)
        solved = any(a is not b for a, b in zip(before, _solve_state(arrays), strict=True))
        (solving if solved else plain).append(seconds)
        if native_step is not None:
            native.append(native_step(x, y))
        if products is not None:
            floor.append(time_products(products, device, dtype, seed=i))
        if every_pass is not None:
            floor_every_pass.append(time_products(every_pass, device, dtype, seed=i))
        if arrays:
            solver.append(solver_seconds(arrays, device))
        i += 1
        timed = len(plain) + len(solving)
        progress.batch(
            f"batch {timed}/{target}: {seconds:.2f} s"
            + (f", native {native[-1]:.3f} s" if native else "")
            + (f", floor {floor[-1]:.3f} s" if floor else "")
            + (f", solver {solver[-1]:.3f} s" if solver else "")
        )

    solves_per_epoch = math.ceil(per_epoch / refresh_every) if arrays else 0
    plain_median, solving_median = _median(plain), _median(solving)
    if solving_median is None:
        per_batch = plain_median
        assert per_batch is not None
        seconds_per_epoch = per_batch * per_epoch
    elif plain_median is None or solves_per_epoch >= per_epoch:
        seconds_per_epoch = solving_median * per_epoch
    else:
        seconds_per_epoch = (
            plain_median * (per_epoch - solves_per_epoch) + solving_median * solves_per_epoch
        )
    native_median = _median(native)
    native_spe = seconds_per_epoch if native_step is None else native_median * per_epoch  # type: ignore[operator]
    floor_median = _median(floor)
    floor_spe = None if floor_median is None else floor_median * per_epoch
    every_pass_median = _median(floor_every_pass)
    every_pass_spe = floor_spe if every_pass_median is None else every_pass_median * per_epoch
    solver_median = _median(solver)
    solver_spe = 0.0 if solver_median is None else solver_median * solves_per_epoch

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    return {
        "name": config.name,
        "network": network.name,
        "description": config.description,
        "seconds_per_epoch": seconds_per_epoch,
        "ratio_vs_native": ratio(seconds_per_epoch, native_spe),
        "ratio_vs_floor": ratio(seconds_per_epoch, floor_spe),
        "ratio_vs_floor_plus_solver": ratio(
            seconds_per_epoch, None if floor_spe is None else floor_spe + solver_spe
        ),
        "ratio_vs_every_pass_floor_plus_solver": ratio(
            seconds_per_epoch, None if every_pass_spe is None else every_pass_spe + solver_spe
        ),
        "native_seconds_per_epoch": native_spe,
        "floor_seconds_per_epoch": floor_spe,
        "every_pass_floor_seconds_per_epoch": every_pass_spe,
        "solver_seconds_per_epoch": solver_spe,
        "peak_memory_mb": memory.peak_mb,
        "peak_memory_kind": memory.kind,
        "baseline_memory_mb": baseline_mb,
        "batches_timed": len(plain) + len(solving),
        "solving_batches_timed": len(solving),
        "warmup_batches": warmup,
        "batches_per_epoch": per_epoch,
        "batch_size": batch_size,
        "solves_per_epoch": solves_per_epoch,
        "floor_gflop_per_step": None if products is None else sum(p.flops for p in products) / 1e9,
        "floor_products": None if products is None else [p.describe() for p in products],
        "threads": torch.get_num_threads(),
        "device": str(device),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def limit_memory(limit_bytes: int | None) -> None:
    """Cap the process's address space, so that running out of memory fails this process with
    an error instead of waking the kernel's OOM killer on a shared machine."""
    if limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def main() -> None:
    """Read the job from stdin, measure, print the result line."""
    job = json.loads(sys.stdin.read())
    try:
        if job["device"] == "cpu":
            limit_memory(job.get("memory_limit_bytes"))
        result = measure(job)
    except MemoryError:
        result = {"error": "out of memory (MemoryError)"}
    except Exception as exc:  # reported in the row, the benchmark goes on
        message = str(exc).splitlines()[0] if str(exc) else ""
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
            message = f"out of memory: {message}"
        result = {"error": f"{type(exc).__name__}: {message}", "traceback": traceback.format_exc()}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
