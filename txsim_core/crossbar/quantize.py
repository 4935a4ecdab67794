"""Scaling and quantizing the digital values that enter an array (inputs and errors)."""

from __future__ import annotations

import torch


def row_group_scale(x: torch.Tensor, rows_per_sample: int) -> torch.Tensor:
    """The largest magnitude of each sample, one value per row of ``x``.

    Args:
        x: values of shape ``(N, K)``; consecutive groups of ``rows_per_sample`` rows belong to
            one sample (one image's patches, say).
        rows_per_sample: rows per sample; 1 scales every row on its own.

    Returns:
        Shape ``(N, 1)``, never zero (an all-zero sample gets scale 1).
    """
    grouped = x.detach().reshape(-1, rows_per_sample * x.shape[-1]).abs().amax(dim=1)
    grouped = torch.where(grouped > 0, grouped, torch.ones_like(grouped))
    return grouped.repeat_interleave(rows_per_sample).unsqueeze(1)


def quantize_signed(
    x: torch.Tensor,
    bits: int | None,
    *,
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Round values in [-1, 1] to the signed grid ``k / (2**(bits-1) - 1)``.

    Args:
        x: values; those outside [-1, 1] are clipped.
        bits: precision, sign included; None returns ``x`` unchanged.
        stochastic: round up with a probability equal to the distance from the lower grid point
            (unbiased), instead of to the nearest point.
        generator: random generator for stochastic rounding.
    """
    if bits is None:
        return x
    levels = 2 ** (bits - 1) - 1
    scaled = x.clamp(-1.0, 1.0) * levels
    if stochastic:
        noise = torch.rand(scaled.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.floor(scaled + noise) / levels
    return torch.round(scaled) / levels
