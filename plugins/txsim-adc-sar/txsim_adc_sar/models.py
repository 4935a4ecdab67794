"""The successive-approximation (SAR) ADC.

Signed scheme: sign-magnitude, the same grid as the ``uniform`` ADC and the layer's signed
values. An N-bit converter (sign included) has ``M = N - 1`` magnitude bits and codes
``-L .. L``, ``L = 2**M - 1``; ``LSB = FS / L`` with the full scale ``FS`` fixed or calibrated
(:mod:`txsim_core.calibration`). In LSB, the input is ``x = I / LSB``.

Conversion (one comparator, N decisions, all conversions at once; ``o`` the instance's offset and
``n_0 .. n_M`` independent noise samples, all in LSB):

1. sign: ``s = +1`` if ``x + o + n_0 >= 0`` else ``-1``;
2. magnitude, for ``i = M-1 .. 0``: the capacitive DAC tries ``trial = level + w_i``; the
   comparator keeps bit ``i`` (``level = trial``) if ``s * (x + o + n) + 1/2 >= trial``.
   The DAC moves the residue towards zero from the side the sign decision chose (a differential
   SAR), so the comparator's offset shifts every transition of both signs alike; the half-LSB
   shift makes the converter round instead of truncate;
3. output ``s * code * LSB``, ``code = sum of kept 2**i``: the digital value of the code.

Without errors ``w_i = 2**i`` and the output is ``sign(x) * min(floor(|x| + 1/2), L) * LSB``,
exactly the ``uniform`` ADC. Saturation: beyond ``+-FS`` every bit is kept, code ``+-L``.

Capacitor mismatch (charge-redistribution DAC of binary-weighted capacitors ``C_i = 2**i`` unit
capacitors plus one unit termination capacitor, total ``2**M`` units): every unit capacitor has a
relative error of standard deviation ``sigma_cap`` (Pelgrom: a capacitor of ``2**i`` units has
relative sigma ``sigma_cap / sqrt(2**i)``). The DAC output of a code is its share of the total
capacitance, ``w_i = 2**M * C_i / (sum_j C_j + C_term)`` (in LSB). To first order in sigma:

* ``INL_m`` (transition ``m`` against ideal) has variance ``sigma_cap**2 * m * (1 - m / 2**M)``,
  largest at mid scale: ``sigma_cap * 2**(M/2 - 1)``;
* ``DNL_m`` (width of code ``m`` minus 1 LSB) has variance
  ``sigma_cap**2 * (2**(t+1) - 1 - 2**-M)`` where ``t`` is the number of trailing ones of ``m``
  (the transition that switches ``2**t`` units on and ``2**t - 1`` off), largest at mid scale:
  ``~ sigma_cap * 2**(M/2)``.

The weights ``w`` (shape ``(units, channels, M)``) and offsets (``(units, channels)``) are
sampled once per converter instance in :meth:`SARADC.setup` and kept in buffers (saved in
checkpoints); the comparator noise is drawn anew for every decision of every conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from txsim_core.calibration import FullScale, FullScaleParams, adopt_buffer_shapes, to_lsb
from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC
from txsim_core.params import parameter


@attrs.frozen(kw_only=True)
class SARADCParams(FullScaleParams):
    """Parameters of the SAR ADC (the full-scale parameters come first)."""

    bits: int = parameter(
        8,
        kind=int,
        low=2,
        high=24,
        help="Resolution, sign included: one sign decision and bits-1 magnitude decisions; codes "
        "-(2**(bits-1)-1) .. 2**(bits-1)-1.",
    )
    sigma_cap: float = parameter(
        0.0,
        low=0.0,
        high=0.2,
        help="Relative standard deviation of a unit capacitor of the capacitive DAC (a capacitor "
        "of 2**i units: sigma_cap / sqrt(2**i)). Sampled per converter instance. 0: exact DAC.",
    )
    sigma_offset: float = parameter(
        0.0,
        unit="LSB",
        low=0.0,
        help="Standard deviation of the comparator's input-referred offset, sampled per "
        "converter instance (unit, channel). 0: no offset.",
    )
    sigma_noise: float = parameter(
        0.0,
        unit="LSB",
        low=0.0,
        help="RMS input-referred comparator noise, drawn anew for every decision of every "
        "conversion. 0: noiseless.",
    )


class SARADC(ADC):
    """Sign-magnitude SAR ADC with capacitor mismatch and comparator offset and noise.

    See the module docstring for the algorithm and the statistics of its errors.

    Attributes:
        cap_weights: buffer, the DAC weight of each magnitude bit of each instance, in LSB, shape
            ``(units, channels, bits - 1)`` (empty until :meth:`setup`).
        offset: buffer, the comparator offset of each instance, in LSB, ``(units, channels)``.
    """

    cap_weights: torch.Tensor
    offset: torch.Tensor

    def __init__(self, params: SARADCParams) -> None:
        super().__init__(params)
        self.scale = FullScale(params)
        self.register_buffer("cap_weights", torch.zeros(0, 0, params.bits - 1))
        self.register_buffer("offset", torch.zeros(0, 0))
        self._generator: torch.Generator | None = None
        self._device_generators: dict[str, torch.Generator] = {}

    @property
    def levels(self) -> int:
        """The largest magnitude code, ``2**(bits-1) - 1``."""
        return int(2 ** (self.params.bits - 1) - 1)

    @property
    def full_scale(self) -> torch.Tensor:
        """The current full scale in amperes, shape ``(1,)`` or ``(units,)``."""
        return self.scale.value

    def setup(self, units: int, channels: int, generator: torch.Generator) -> None:
        """Sample the capacitor mismatch and offset of each of ``units x channels`` instances.

        Keeps what a checkpoint loaded, or an earlier setup sampled, for the same shape.
        """
        self.scale.setup(units)
        self._generator = generator
        self._device_generators = {}
        magnitude_bits = self.params.bits - 1
        if self.cap_weights.shape == (units, channels, magnitude_bits):
            return
        device = self.offset.device
        p = self.params
        sizes = 2.0 ** torch.arange(magnitude_bits, dtype=torch.float64)
        caps = sizes.expand(units, channels, magnitude_bits)
        termination = torch.ones(units, channels, dtype=torch.float64)
        if p.sigma_cap > 0:
            eps = self._randn((units, channels, magnitude_bits + 1), generator, torch.float64)
            eps = eps.cpu()
            caps = (sizes * (1 + p.sigma_cap / sizes.sqrt() * eps[..., :-1])).clamp(min=0.0)
            termination = (1 + p.sigma_cap * eps[..., -1]).clamp(min=0.0)
        total = caps.sum(-1) + termination
        weights = caps * (2.0**magnitude_bits / total).unsqueeze(-1)
        offset = torch.zeros(units, channels, dtype=torch.float64)
        if p.sigma_offset > 0:
            offset = p.sigma_offset * self._randn((units, channels), generator, torch.float64).cpu()
        dtype = self.cap_weights.dtype
        self.cap_weights = weights.to(device=device, dtype=dtype)
        self.offset = offset.to(device=device, dtype=dtype)

    @staticmethod
    def _randn(
        shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype
    ) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)

    def _noise_generator(self, device: torch.device) -> torch.Generator:
        """The layer's generator, or one seeded from it once for another device."""
        assert self._generator is not None
        own = self._generator.device
        if own.type == device.type and (own.index or 0) == (device.index or 0):
            return self._generator
        key = str(device)
        if key not in self._device_generators:
            seed = int(torch.randint(0, 2**62, (1,), generator=self._generator).item())
            self._device_generators[key] = torch.Generator(device=device).manual_seed(seed)
        return self._device_generators[key]

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if self._generator is None:
            raise ConfigError(
                "Expected setup(units, channels, generator) to be called before the first "
                "conversion of the sar ADC, but it was not."
            )
        if current.dim() != 3 or tuple(current.shape[1:]) != tuple(self.offset.shape):
            raise ConfigError(
                f"Expected currents of shape (B, {self.offset.shape[0]}, "
                f"{self.offset.shape[1]}) (as set up), but got {tuple(current.shape)}."
            )
        fs = self.scale(current)
        x, lsb = to_lsb(current, fs, self.levels)
        dtype = x.dtype
        p = self.params
        seen = x if p.sigma_offset == 0 else x + self.offset.to(device=x.device, dtype=dtype)
        generator = self._noise_generator(x.device) if p.sigma_noise > 0 else None

        def decide(value: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
            """One comparator decision ``value + noise >= threshold`` for every conversion."""
            if generator is None:
                return value >= threshold
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=dtype)
            return value + p.sigma_noise * noise >= threshold

        sign = torch.where(decide(seen, 0.0), 1.0, -1.0).to(dtype)
        # magnitude seen by the comparator, with the half-LSB shift; the noise is symmetric, so
        # adding it after the polarity swap has the same distribution as before
        v = sign * seen + 0.5
        level = torch.zeros_like(x)  # the DAC output of the code so far, in LSB
        exact_dac = p.sigma_cap == 0  # then the level is the code itself
        code = torch.zeros_like(x)
        weights = self.cap_weights.to(device=x.device, dtype=dtype).movedim(-1, 0).contiguous()
        for i in reversed(range(p.bits - 1)):
            trial = level + weights[i]
            keep = decide(v, trial)
            level = torch.where(keep, trial, level)
            if not exact_dac:
                code = code + keep.to(dtype) * float(2**i)
        return sign * (level if exact_dac else code) * lsb

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        adopt_buffer_shapes(self, state_dict, prefix, ["cap_weights", "offset"])
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
