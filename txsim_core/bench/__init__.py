"""The training benchmark of txsim: ``txsim bench`` and ``benchmarks/training.py``.

How fast txsim trains, always as ratios within one run (absolute times on shared machines are
not comparable between runs)::

    from txsim_core.bench import BenchSettings, run_benchmark, format_report

    rows = run_benchmark(BenchSettings(networks=("lenet5",), configs=("native", "ideal")))
    print(format_report(rows))

Every configuration of :data:`CONFIGS` is trained on every network of :data:`NETWORKS` (LeNet-5
on the bundled MNIST subset; ResNet-20 on random CIFAR-sized inputs) with minibatches of 128, in
a Python process of its own (:mod:`txsim_core.bench.worker`) so that its peak memory is its own.
Each row gives seconds per epoch, the ratio to native PyTorch and to the configuration's matmul
floor (:mod:`txsim_core.bench.floor`: the products of every array, slice and pass as plain
torch matmuls), the cost of its circuit solver, and its peak memory.
"""

from txsim_core.bench.configs import CONFIGS, NETWORKS, BenchConfig, BenchNetwork
from txsim_core.bench.runner import BenchSettings, format_report, machine_info, run_benchmark

__all__ = [
    "CONFIGS",
    "NETWORKS",
    "BenchConfig",
    "BenchNetwork",
    "BenchSettings",
    "format_report",
    "machine_info",
    "run_benchmark",
]
