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

from txsim_core.compiled import FusedKernel, flat_alias
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
        return _codes(x, _top(x, bits), _mask(x, bits))

    def forward(self, x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Voltages ``(P, *x.shape)`` and pass weights ``(P,)``. On the CPU one compiled loop
        writes every pass (:class:`~txsim_core.compiled.FusedKernel`, bit for bit the
        operations of :func:`_sign_magnitude_passes` or :func:`_twos_complement_passes` one by
        one, which run elsewhere)."""
        bits = _check_bits(bits)
        passes = self.num_passes(bits)
        v_read = torch.tensor(self.params.v_read, dtype=x.dtype, device=x.device)
        constants = (_top(x, bits), _mask(x, bits), v_read)
        sign_magnitude = self.params.encoding == "sign-magnitude"
        kernel = _FUSED_SIGN_MAGNITUDE if sign_magnitude else _FUSED_TWOS_COMPLEMENT
        volts = torch.empty((passes, *x.shape), dtype=x.dtype, device=x.device)
        if not (kernel.takes(x) and kernel(flat_alias(volts), flat_alias(x), *constants)):
            kernel.function(volts.view(-1), x.reshape(-1), *constants)
        significance = 2.0 ** torch.arange(bits - 1, dtype=torch.float64, device=x.device)
        negative = (
            -significance if sign_magnitude else significance.new_tensor([-(2.0 ** (bits - 1))])
        )
        significance = torch.cat((significance, negative))
        weights = (significance / ((2 ** (bits - 1) - 1) * self.params.v_read)).to(x.dtype)
        return volts, weights


def _top(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``K = 2**(bits-1) - 1`` in the dtype the codes are computed in: float64 when ``K``
    exceeds the float32 mantissa or ``x`` is float64, float32 otherwise."""
    work = torch.float64 if bits > 24 or x.dtype == torch.float64 else torch.float32
    return torch.tensor(float(2 ** (bits - 1) - 1), dtype=work, device=x.device)


def _mask(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``2**bits - 1`` (the bits of a code in two's complement) in the dtype of the codes:
    int32 up to 31 bits, int64 beyond."""
    dtype = torch.int32 if bits <= 31 else torch.int64
    return torch.tensor(2**bits - 1, dtype=dtype, device=x.device)


def _codes(x: torch.Tensor, top: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``round(clamp(x, -1, 1) * K)`` in ``top``'s dtype, ties away from zero, as integers of
    ``mask``'s dtype."""
    scaled = x.to(top.dtype).clamp(-1.0, 1.0) * top
    return (torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)).to(mask.dtype)


def _bit_planes(k: torch.Tensor, count: int) -> torch.Tensor:
    """Bits ``0 .. count-1`` of non-negative integers ``k`` ``(N,)``, as ``(count, N)``."""
    shifts = torch.arange(count, dtype=k.dtype, device=k.device).view(-1, 1)
    return torch.bitwise_and(torch.bitwise_right_shift(k, shifts), 1)


def _sign_magnitude_passes(
    volts: torch.Tensor,
    x: torch.Tensor,
    top: torch.Tensor,
    mask: torch.Tensor,
    v_read: torch.Tensor,
) -> None:
    """The passes of flat inputs ``x`` ``(N,)`` into flat ``volts`` ``(2 M N,)``: magnitude
    bit ``j`` of the positive rows in pass ``j``, of the negative rows in pass ``M + j``."""
    k = _codes(x, top, mask)
    planes = _bit_planes(k.abs(), volts.shape[0] // x.shape[0] // 2).to(volts.dtype)
    positive = (k > 0).to(volts.dtype) * v_read
    negative = (k < 0).to(volts.dtype) * v_read
    volts.view(-1, x.shape[0]).copy_(torch.cat((planes * positive, planes * negative)))


def _twos_complement_passes(
    volts: torch.Tensor,
    x: torch.Tensor,
    top: torch.Tensor,
    mask: torch.Tensor,
    v_read: torch.Tensor,
) -> None:
    """The passes of flat inputs ``x`` ``(N,)`` into flat ``volts`` ``(b N,)``: bit ``j`` of
    the codes in two's complement (``mask = 2**b - 1``) in pass ``j``."""
    pattern = torch.bitwise_and(_codes(x, top, mask), mask)
    planes = _bit_planes(pattern, volts.shape[0] // x.shape[0])
    volts.view(-1, x.shape[0]).copy_(planes.to(volts.dtype) * v_read)


_FUSED_SIGN_MAGNITUDE = FusedKernel(_sign_magnitude_passes, "1-bit DAC (sign-magnitude)")
_FUSED_TWOS_COMPLEMENT = FusedKernel(_twos_complement_passes, "1-bit DAC (two's complement)")
