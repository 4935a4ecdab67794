"""The 1-bit (bit-streaming) DAC.

An input of ``b`` bits, sign included, lies on the grid ``x = k / K`` with integer ``k``,
``|k| <= K = 2**(b-1) - 1``. The DAC drives each row at 0 V or ``v_read`` once per bit of ``k``
(one array evaluation, "pass", per bit) and the layer adds the digitised passes with the pass
weights: ``x = sum_p w_p * V_p`` exactly.

Two encodings of the sign (parameter ``encoding``):

* ``"sign-magnitude"`` (default): separate positive and negative phases. With ``m = |k|`` and its
  bits ``m_j`` (``j = 0 .. b-2``), pass ``j`` drives ``V = v_read * m_j`` on rows whose input is
  positive (0 V elsewhere) and pass ``b-1+j`` the same on rows whose input is negative;
  ``w_j = +2**j / (K * v_read)``, ``w_{b-1+j} = -2**j / (K * v_read)``. ``2 (b-1)`` passes.
* ``"twos-complement"``: the ``b`` bits ``t_j`` of ``k`` in two's complement, pass ``j`` drives
  ``v_read * t_j``; ``w_j = 2**j / (K * v_read)`` for ``j < b-1`` and the sign pass has the
  negative weight ``w_{b-1} = -2**(b-1) / (K * v_read)``. ``b`` passes.

Why sign-magnitude is the default: the array current, IR drop and ADC error of every pass then
grow with the magnitude of the inputs, and a small input drives few rows in few passes. In two's
complement a small negative input (-1 is all ones) drives its row in every pass, and the sign pass
of weight ``-2**(b-1)`` nearly cancels the sum of the others: its errors, and the ADC's, enter with
the largest weight while the true result is small. The errors propagated backward in training are
signed and mostly small, the worst case for two's complement. Sign-magnitude also treats both
signs alike (an odd error). It costs ``2 (b-1)`` passes instead of ``b``.
"""

from __future__ import annotations

import attrs
import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import DAC
from txsim_core.params import parameter

MAX_BITS = 62
"""Largest input precision: codes are extracted with 64-bit integer operations."""


@attrs.frozen(kw_only=True)
class OneBitDACParams:
    """Parameters of the 1-bit DAC."""

    v_read: float = parameter(
        1.0,
        unit="V",
        low=0.0,
        low_open=True,
        high=10.0,
        help="Read voltage of a 1 bit; a 0 bit drives 0 V. Default: the paper's 0-1 V inputs.",
    )
    encoding: str = parameter(
        "sign-magnitude",
        kind=str,
        choices=("sign-magnitude", "twos-complement"),
        help="How signed inputs are streamed: 'sign-magnitude', the magnitude bits in a positive "
        "and a negative phase (2*(bits-1) passes); 'twos-complement', the two's complement bits "
        "with a negative-weight sign pass (bits passes).",
    )


def _check_bits(bits: int | None) -> int:
    if bits is None:
        raise ConfigError(
            "Expected the input precision `bits` to be an integer for the 1bit DAC (it streams "
            "one bit per pass, so it needs a finite precision), but got None. Set the layer's "
            "input bits, or use the 'ideal' or 'multibit' DAC for full-precision inputs."
        )
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= MAX_BITS:
        raise ConfigError(
            f"Expected the input precision `bits` of the 1bit DAC to be an integer in "
            f"[2, {MAX_BITS}] (a sign and at least one magnitude bit), but got {bits!r}."
        )
    return bits


class OneBitDAC(DAC):
    """Streams ``b``-bit inputs one bit per pass at 0 V or ``v_read`` (see the module docstring)."""

    def num_passes(self, bits: int | None) -> int:
        bits = _check_bits(bits)
        return 2 * (bits - 1) if self.params.encoding == "sign-magnitude" else bits

    def codes(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        """The integer codes ``k = round(x * K)`` (ties away from zero) of inputs on the grid.

        Inputs off the grid are rounded to it and inputs beyond [-1, 1] are clipped. The
        arithmetic runs in float64 when ``K`` exceeds the float32 mantissa; the codes are int32
        up to 31 bits, int64 beyond.
        """
        top = 2 ** (bits - 1) - 1
        work = torch.float64 if bits > 24 or x.dtype == torch.float64 else torch.float32
        scaled = x.to(work).clamp(-1.0, 1.0) * top
        code = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
        return code.to(torch.int32 if bits <= 31 else torch.int64)

    def forward(self, x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        bits = _check_bits(bits)
        top = 2 ** (bits - 1) - 1
        k = self.codes(x, bits)
        v_read = self.params.v_read
        expand = (-1,) + (1,) * x.dim()
        if self.params.encoding == "sign-magnitude":
            shifts = torch.arange(bits - 1, device=x.device, dtype=k.dtype)
            planes = torch.bitwise_and(torch.bitwise_right_shift(k.abs(), shifts.view(expand)), 1)
            planes = planes.to(x.dtype)
            positive = (k > 0).to(x.dtype) * v_read
            negative = (k < 0).to(x.dtype) * v_read
            volts = torch.cat((planes * positive, planes * negative))
            significance = torch.cat((2.0**shifts, -(2.0**shifts)))
        else:
            shifts = torch.arange(bits, device=x.device, dtype=k.dtype)
            pattern = torch.bitwise_and(k, 2**bits - 1)  # two's complement in `bits` bits
            planes = torch.bitwise_and(torch.bitwise_right_shift(pattern, shifts.view(expand)), 1)
            volts = planes.to(x.dtype) * v_read
            significance = 2.0**shifts
            significance[-1] = -significance[-1]
        weights = (significance.to(torch.float64) / (top * v_read)).to(x.dtype)
        return volts, weights
