"""Optimizers that write weight updates through the crossbar update models."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class CrossbarSGD(torch.optim.Optimizer):
    """Stochastic gradient descent, built like ``torch.optim.SGD``.

    Digital parameters (biases, batch norm, native layers) are updated exactly as
    ``torch.optim.SGD`` does. For a crossbar layer's weight the step ``-lr * d`` (``d`` the
    gradient with weight decay and momentum applied) is handed to the layer, which writes it
    through its update model (non-linearity, write noise, bounds): the learning rate is applied
    *before* the device non-linearity, because it sets how much change the update circuit is asked
    for (the paper multiplies after; with its small non-linearity factor the two agree to first order).

    Args:
        params: parameters or parameter groups, as for any PyTorch optimizer.
        lr: learning rate.
        momentum: momentum factor.
        dampening: dampening of the momentum.
        weight_decay: L2 penalty.
        nesterov: use Nesterov momentum.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0.0 or momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(
                f"Expected non-negative lr, momentum and weight_decay, but got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}."
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Expected momentum > 0 and dampening = 0 for Nesterov momentum.")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(
                            d, alpha=1 - group["dampening"]
                        )
                    buf = state["momentum_buffer"]
                    d = d.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                crossbar = getattr(p, "_txsim_crossbar", None)
                if crossbar is None:
                    p.add_(d, alpha=-group["lr"])
                else:
                    crossbar.apply_update(d * -group["lr"])
        return loss
