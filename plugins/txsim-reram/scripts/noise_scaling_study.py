"""Which reading of the paper's write-noise formula reproduces its sensitivity results?

The TxSim paper (Sec. IV-C, VI-C) gives the write noise's standard deviation as
``gamma * sqrt(G_max - G_min) * dG_ideal`` and reports that gamma = 1 and 5 cost almost no
accuracy while gamma = 10 costs about 10 %. This script trains a small MLP (64-64-10, ReLU) on
scikit-learn's 8x8 digits with every weight held by a differential pair of ReRAM devices updated by
the ``reram`` update model (v = 0.01), once with the noise growing linearly with the request
(``noise_scaling="linear"``) and once as CrossSim v2 does (``"sqrt"``), and prints the test
accuracy (mean of three seeds).

Needs scikit-learn (not a dependency of the plugin). Run: ``python noise_scaling_study.py [lr]``
(3 to 10 minutes on two CPU cores).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import txsim_core


def load() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """The digits, scaled to [0, 1], with a fixed 1347/450 train/test split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y), order[:1347], order[1347:]


def train(update, seed: int, lr: float, epochs: int = 30, batch: int = 32) -> float:
    """Test accuracy after SGD training; ``update=None`` trains in plain floating point."""
    x, y, train_idx, test_idx = load()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    weights = [torch.randn(64, 64) / 8.0, torch.randn(64, 10) / 8.0]
    if update is not None:  # weight w <-> pair (g+, g-) with g+ - g- = w * span
        g_min, g_max = update.g_min, update.g_max
        span, mid = g_max - g_min, (g_max + g_min) / 2
        pairs = [
            [(mid + w * span / 2).clamp(g_min, g_max), (mid - w * span / 2).clamp(g_min, g_max)]
            for w in weights
        ]
    for _ in range(epochs):
        order = train_idx[torch.randperm(len(train_idx)).numpy()]
        for start in range(0, len(order), batch):
            rows = torch.tensor(order[start : start + batch])
            if update is not None:
                weights = [(gp - gn) / span for gp, gn in pairs]
            w = [t.clone().requires_grad_(True) for t in weights]
            loss = torch.nn.functional.cross_entropy(torch.relu(x[rows] @ w[0]) @ w[1], y[rows])
            loss.backward()
            with torch.no_grad():
                if update is None:
                    weights = [t - lr * p.grad for t, p in zip(weights, w, strict=True)]
                    continue
                for k, p in enumerate(w):
                    dg = -lr * p.grad * span  # requested change of g+ - g-, split over the pair
                    gp, gn = pairs[k]
                    pairs[k] = [update.step(gp, dg / 2, gen), update.step(gn, -dg / 2, gen)]
    if update is not None:
        weights = [(gp - gn) / span for gp, gn in pairs]
    with torch.no_grad():
        out = torch.relu(x[test_idx] @ weights[0]) @ weights[1]
    return (out.argmax(1) == y[test_idx]).float().mean().item()


def main() -> None:
    """Print the accuracy table."""
    lr = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
    torch.set_num_threads(2)
    seeds = (0, 1, 2)
    print(f"lr = {lr}; floating point: {np.mean([train(None, s, lr) for s in seeds]):.3f}")
    for scaling, gammas in (("linear", (0, 1, 5, 10, 20)), ("sqrt", (0.1, 1, 5, 10))):
        for gamma in gammas:
            update = txsim_core.build_model(
                "update", "reram", nonlinearity=0.01, write_noise=gamma, noise_scaling=scaling
            )
            accs = [train(update, s, lr) for s in seeds]
            print(
                f"{scaling:6s} gamma={gamma:<5g} accuracy {np.mean(accs):.3f}  {np.round(accs, 3)}"
            )


if __name__ == "__main__":
    main()
