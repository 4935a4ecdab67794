"""Training speed and memory of txsim against native PyTorch and the matmul floor.

A thin wrapper of ``txsim bench`` (:mod:`txsim_core.bench`), so that the benchmarks folder holds
every benchmark::

    python benchmarks/training.py --quick            # LeNet-5 on the bundled MNIST subset
    python benchmarks/training.py --quick --json     # the rows as JSON
    python benchmarks/training.py                    # also ResNet-20 on CIFAR-sized inputs

Every option of ``txsim bench`` works (``--help`` lists them). The figures and the machine they
come from are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import sys

from txsim_core.bench.command import bench_command

if __name__ == "__main__":
    bench_command.main(args=sys.argv[1:], prog_name="benchmarks/training.py")
