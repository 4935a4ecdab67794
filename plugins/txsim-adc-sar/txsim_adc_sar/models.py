"""The successive-approximation (SAR) ADC.

Signed scheme: sign-magnitude, the same grid as the ``uniform`` ADC and the layer's signed
values. An N-bit converter (sign included) has ``M = N - 1`` magnitude bits and codes
``-L .. L``, ``L = 2**M - 1``; ``LSB = FS / L`` with the full scale ``FS`` fixed or calibrated
(:mod:`txsim_core.calibration`). In LSB, the input is ``x = I / LSB``.

Conversion (one comparator, N decisions, all conversions at once; ``o`` the instance's offset and
``n_0 .. n_M`` independent noise samples, all in LSB):

1. sign: ``s = -1`` if ``x + o + n_0`` is negative, else ``+1`` (a zero input counts by the
   sign of its float: ``-0.0`` is negative, as in :func:`~txsim_core.calibration.signed_codes_`);
2. magnitude, for ``i = M-1 .. 0``: the capacitive DAC tries ``trial = level + w_i``; the
   comparator keeps bit ``i`` (``level = trial``) if ``s * (x + o + n) + 1/2 >= trial``.
   The DAC moves the residue towards zero from the side the sign decision chose (a differential
   SAR), so the comparator's offset shifts every transition of both signs alike; the half-LSB
   shift makes the converter round instead of truncate;
3. output ``s * code * LSB``, ``code = sum of kept 2**i``: the digital value of the code.
   NaN in, NaN out: a NaN current means the simulation has already failed, and the converter
   passes it on rather than hide it behind a code.

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

Computation: :meth:`SARADC._convert_loop` runs the steps above as written, one decision after
the other over all conversions at once; it is the reference. ``forward`` gives the same bits
(tests compare bit patterns, signed zeros included, and where NaN comes out) by the fastest of three paths:

1. exact DAC (``w_i = 2**i``) and no noise: every trial level is an integer, exact in the
   dtype (checked by :meth:`SARADC._dac_state`), so the decisions ``v >= level + 2**i`` from
   the MSB down are a binary search over the integers and the code is ``min(floor(v), L)`` for
   ``v = fl(|x + o| + 1/2)`` (what the loop compares: ``s * (x + o)`` is ``|x + o|``). That is
   the rounding of the ``uniform`` ADC, :func:`~txsim_core.calibration.signed_codes_`: a few
   in-place passes, with ``+-inf`` saturating and NaN passed on as in the loop (without offset,
   :func:`~txsim_core.calibration.convert_sign_magnitude_`: on the CPU one compiled loop from
   the currents in amperes to the values of their codes);
2. mismatched DAC and no noise: the transfer curve of each instance is a fixed,
   non-decreasing staircase, so the code is the number of its transition levels at or below
   the input, found with one bucket lookup in a table built once per instance from
   ``cap_weights`` (:class:`_Table`, :meth:`SARADC._convert_table`);
3. comparator noise, or a table larger than :attr:`SARADC.table_limit`: the loop with its
   buffers reused (:meth:`SARADC._convert_steps`), drawing the same noise.

No gradient flows through the converter: its output is piecewise constant in the input, and
layers call it inside autograd functions that define their own backward pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import attrs
import torch

from txsim_core.calibration import (
    BIT_PATTERN_DTYPES,
    FullScale,
    FullScaleParams,
    adopt_buffer_shapes,
    convert_sign_magnitude_,
    signed_codes_,
    to_lsb,
)
from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC, CurrentParts
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


def _transition_levels(weights: torch.Tensor) -> torch.Tensor:
    """The input levels ``E_k`` (in LSB, after the half-LSB shift) at which each code begins.

    A noiseless SAR conversion of ``v`` is a binary decision tree: the node reached by the
    prefix ``q`` of already decided bits (bit ``i`` next) compares ``v >= t = fl(level(q) +
    w_i)``, ``level(q)`` being the DAC output of the prefix summed in the dtype from the MSB
    down, exactly as the loop sums it.

    Monotonic: if ``v1 < v2`` reach different codes, take the first node where their
    decisions differ; both compared with its threshold ``t``, so ``v2 >= t > v1``: ``v2`` keeps
    the bit and ``v1`` does not, with the same higher bits, so ``code(v2) > code(v1)``
    whatever the lower bits. The transfer curve is therefore a non-decreasing staircase,
    ``code(v) = #{k in 1..L : v >= E_k}`` with ``E_1 <= ... <= E_L``, whatever the DAC
    (a non-monotonic DAC leaves codes unreachable: then consecutive ``E_k`` coincide).

    Exact levels: walk the tree from the root, each node with the interval ``[lo, hi)`` of the
    inputs that reach it (``(-inf, inf)`` at the root), and clamp its threshold into it:
    ``e = min(max(t, lo), hi)``; the left child gets ``[lo, e)``, the right ``[e, hi)``. For
    ``v`` in ``[lo, hi)``, ``v >= e`` exactly when ``v >= t``, so by induction over the depth
    the subtree's code is ``#{its clamped thresholds <= v}`` and the clamped thresholds of the
    left subtree lie in ``[lo, e]``, those of the right in ``[e, hi]``: sorted. The node where
    the paths to ``k - 1`` and ``k`` split (the prefix of ``k`` above its lowest set bit) gives
    ``E_k``. All arithmetic is that of the loop, in the weights' dtype.

    Args:
        weights: ``(n, M)``, the DAC weight of bit ``i`` in column ``i``, in the dtype the
            conversion uses.

    Returns:
        ``(n, 2**M - 1)``: ``E_k`` in column ``k - 1``, non-decreasing along each row.
    """
    n, magnitude_bits = weights.shape
    shape = (n, 1)
    level = torch.zeros(shape, dtype=weights.dtype, device=weights.device)
    lo = torch.full(shape, -torch.inf, dtype=weights.dtype, device=weights.device)
    hi = torch.full(shape, torch.inf, dtype=weights.dtype, device=weights.device)
    levels = torch.empty(n, 2**magnitude_bits - 1, dtype=weights.dtype, device=weights.device)
    for depth in range(magnitude_bits):
        i = magnitude_bits - 1 - depth
        t = level + weights[:, i : i + 1]
        e = torch.minimum(torch.maximum(t, lo), hi)
        prefix = torch.arange(2**depth, device=weights.device)
        levels[:, (2 * prefix + 1) * 2**i - 1] = e  # the transition into code (2q+1) 2**i
        level = torch.stack((level, t), dim=-1).reshape(n, -1)
        lo = torch.stack((lo, e), dim=-1).reshape(n, -1)
        hi = torch.stack((e, hi), dim=-1).reshape(n, -1)
    return levels


def _magnitude_thresholds(levels: torch.Tensor) -> torch.Tensor:
    """``T_k``: the smallest ``a >= 0`` of the dtype with ``fl(a + 1/2) >= E_k``.

    The loop compares ``v = fl(a + 1/2)``, ``a = |seen|``; ``a -> fl(a + 1/2)`` is monotonic, so
    ``v >= E_k`` exactly when ``a >= T_k``. Found by bisection over the bit patterns of the
    non-negative floats (ordered like their values), so it is exact; ``T_k = 0`` where
    ``E_k <= 1/2``.
    """
    int_dtype = torch.int32 if levels.dtype == torch.float32 else torch.int64
    zero = torch.zeros_like(levels)
    target = torch.where(levels > 0.5, levels, zero)  # T = 0 below; keeps the bisection valid

    def reaches(bits: torch.Tensor) -> torch.Tensor:
        return bits.view(levels.dtype) + 0.5 >= target

    # bracket, both ends checked: the predicate false at `lo` (or lo = 0, where it is false
    # since E > 1/2) and true at `hi`; near E - 1/2, else the whole range [0, E]
    start = (target - 0.5).clamp(min=0.0)
    lo = torch.nextafter(torch.nextafter(start, zero), zero).view(int_dtype).clone()
    lo = torch.where(reaches(lo), torch.zeros_like(lo), lo)
    big = torch.full_like(levels, torch.inf)
    hi = torch.nextafter(torch.nextafter(start, big), big).view(int_dtype).clone()
    hi = torch.where(reaches(hi), hi, target.view(int_dtype))
    while True:
        open_ = hi - lo > 1
        if not bool(open_.any()):
            break
        mid = lo + (hi - lo) // 2
        ok = reaches(mid)
        hi = torch.where(open_ & ok, mid, hi)
        lo = torch.where(open_ & ~ok, mid, lo)
    thresholds = torch.where(reaches(lo), lo, hi).view(levels.dtype)
    return torch.where(levels > 0.5, thresholds, zero)


@dataclasses.dataclass(frozen=True)
class _Table:
    """The bucket table of every converter instance, for the lookup of ``_convert_table``.

    Per instance ``i``, the magnitude thresholds ``T_1 <= ... <= T_L`` (see
    :func:`_magnitude_thresholds`), buckets ``j = 0 .. J`` of ``a`` (``j = trunc(min(a, J))``,
    ``J = floor(max T) + 1`` so that every threshold lies below ``J``): ``base[j] = #{k :
    trunc(T_k) < j}`` and ``cand_d[j] = T_{base[j] + d + 1}`` (``+inf`` past ``L``), ``d <
    D``, ``D`` the most thresholds any bucket holds. Flattened with instance ``i`` at
    ``i * (J + 1)`` and stored twice (``half`` entries apart), for both sign decisions.
    """

    top: float
    half: int
    index_dtype: torch.dtype
    offset: torch.Tensor
    base: torch.Tensor
    candidates: tuple[torch.Tensor, ...]

    @property
    def entries(self) -> int:
        """The size of the table: base and candidates, both halves."""
        return self.base.numel() * (1 + len(self.candidates))

    @classmethod
    def build(cls, weights: torch.Tensor, units: int, channels: int) -> _Table:
        n = weights.shape[0]
        thresholds = _magnitude_thresholds(_transition_levels(weights))  # (n, L)
        top = int(thresholds.max().floor().item()) + 1
        buckets = thresholds.to(torch.int64)  # trunc; sorted along each row
        edges = torch.arange(top + 1, device=weights.device).expand(n, -1).contiguous()
        base = torch.searchsorted(buckets, edges)  # #{k : bucket_k < j}
        occupancy = torch.diff(base, dim=1, append=torch.full_like(base[:, :1], buckets.shape[1]))
        depth = max(int(occupancy.max().item()), 1)
        padded = torch.cat((thresholds, thresholds.new_full((n, depth), torch.inf)), dim=1)
        candidates = tuple(
            torch.gather(padded, 1, base + d).reshape(-1).repeat(2) for d in range(depth)
        )
        half = n * (top + 1)
        index_dtype = torch.int32 if weights.dtype == torch.float32 else torch.int64
        offset = torch.arange(n, device=weights.device, dtype=index_dtype) * (top + 1)
        return cls(
            top=float(top),
            half=half,
            index_dtype=index_dtype,
            offset=offset.view(1, units, channels),
            base=base.to(weights.dtype).reshape(-1).repeat(2),
            candidates=candidates,
        )


@dataclasses.dataclass(frozen=True)
class _DacState:
    """What the conversion paths need to know of one dtype's DAC weights."""

    finite: bool  # every weight is finite (else only the reference loop is used)
    binary: bool  # every weight is exactly 2**i: the exact DAC
    closed_form: bool  # the dtype holds the integers up to 2**M exactly
    table: _Table | None  # the lookup table (mismatched DAC, not too many entries)


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

    table_limit: int = 2**22
    """The largest lookup table (entries, all instances) that the mismatched noiseless
    conversion keeps, about ``4 * units * channels * 2**(bits-1)`` (more where mismatch puts
    several transitions into one LSB); past it, or past ``bits - 1`` candidates per bucket, that
    conversion runs the decisions bit by bit (:meth:`_convert_steps`). 2**22 entries (16 MiB in
    float32) admit about 8000 instances at 8 bits, 500 at 12 bits."""

    def __init__(self, params: SARADCParams) -> None:
        super().__init__(params)
        self.scale = FullScale(params)
        self.register_buffer("cap_weights", torch.zeros(0, 0, params.bits - 1))
        self.register_buffer("offset", torch.zeros(0, 0))
        self._generator: torch.Generator | None = None
        self._device_generators: dict[str, torch.Generator] = {}
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: dict[tuple[torch.dtype, str], _DacState] = {}
        self._cache_source: torch.Tensor | None = None
        self._cache_version: int | None = None

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
        self._clear_cache()
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

    # ------------------------------------------------------------------ conversion
    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Convert currents ``(B, units, channels)`` (amperes) to the values of their codes.

        The result never carries a gradient: it is piecewise constant in the input, and the
        full scale is a buffer. Layers call converters inside their own autograd functions,
        whose backward pass defines the gradient, so nothing here is recorded for autograd.
        """
        return self._convert(current, method="auto")

    def convert_in_place(self, current: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward`, converting in the memory of ``current`` (the layer's call)."""
        return self._convert(current, method="auto", in_place=True)

    def convert_parts(self, parts: CurrentParts) -> bool:
        return self.scale.convert_parts(
            parts,
            lambda current: self._convert(current, method="auto", in_place=True, calibrate=False),
        )

    def zero_current_is_silent(self) -> bool:
        """True for an exact DAC without comparator offset or noise (0 A is code 0 and draws no
        noise) unless a percentile calibrates; a mismatched DAC can put 0 A on code 1."""
        p = self.params
        exact = p.sigma_cap == 0 and p.sigma_offset == 0 and p.sigma_noise == 0
        return exact and not self.scale.zeros_matter()

    def _convert(
        self, current: torch.Tensor, method: str, in_place: bool = False, calibrate: bool = True
    ) -> torch.Tensor:
        """``method``: ``"auto"`` (the fastest exact path) or ``"loop"`` (the reference);
        ``in_place``: the fast paths may overwrite ``current``; ``calibrate``: whether this
        call may update a calibrated full scale (not for the parts of a minibatch, see
        :meth:`convert_parts`)."""
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
        with torch.no_grad():
            fs = self.scale(current) if calibrate else self.scale.value_for(current)
            p = self.params
            if method == "auto" and p.sigma_offset == 0 and p.sigma_noise == 0:
                state = self._dac_state(current.dtype, current.device)
                if state.finite and state.binary and state.closed_form:  # an ideal converter
                    return convert_sign_magnitude_(
                        current if in_place else current.clone(), fs, self.levels
                    )
            x, lsb = to_lsb(current, fs, self.levels, in_place=in_place and method == "auto")
            generator = self._noise_generator(x.device) if p.sigma_noise > 0 else None
            if method == "loop":
                seen = x if p.sigma_offset == 0 else x + self.offset.to(x)
                return self._convert_loop(seen, lsb, generator)
            # the fast paths work in place on `x`: a new tensor, unless converting in place
            if (
                not in_place
                and x.untyped_storage().data_ptr() == current.untyped_storage().data_ptr()
            ):
                x = x.clone()
            seen = x if p.sigma_offset == 0 else x.add_(self.offset.to(x))
            state = self._dac_state(x.dtype, x.device)
            if not state.finite:
                return self._convert_loop(seen, lsb, generator)
            if generator is None and state.binary and state.closed_form:
                return signed_codes_(seen, self.levels).mul_(lsb)
            if generator is None and state.table is not None:
                return self._convert_table(seen, lsb, state.table)
            return self._convert_steps(seen, lsb, generator, state.binary)

    def _convert_loop(
        self, seen: torch.Tensor, lsb: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The reference conversion: the algorithm of the module docstring, step by step.

        Args:
            seen: the input in LSB plus the comparator offset, ``(B, units, channels)``.
            lsb: the LSB in amperes, broadcastable to ``seen``.
            generator: the noise generator, or None for a noiseless comparator.
        """
        p = self.params
        dtype = seen.dtype

        def noisy(value: torch.Tensor) -> torch.Tensor:
            """``value`` as the comparator sees it in one decision: plus fresh noise."""
            if generator is None:
                return value
            noise = torch.randn(seen.shape, generator=generator, device=seen.device, dtype=dtype)
            return value + p.sigma_noise * noise

        sign = torch.where(torch.signbit(noisy(seen)), -1.0, 1.0).to(dtype)
        # magnitude seen by the comparator, with the half-LSB shift; the noise is symmetric, so
        # adding it after the polarity swap has the same distribution as before
        v = sign * seen + 0.5
        level = torch.zeros_like(seen)  # the DAC output of the code so far, in LSB
        code = torch.zeros_like(seen)
        weights = self.cap_weights.to(device=seen.device, dtype=dtype).movedim(-1, 0).contiguous()
        for i in reversed(range(p.bits - 1)):
            trial = level + weights[i]
            keep = noisy(v) >= trial
            level = torch.where(keep, trial, level)
            code = code + keep.to(dtype) * float(2**i)
        return torch.where(torch.isnan(seen), seen, sign * code * lsb)

    def _convert_table(self, seen: torch.Tensor, lsb: torch.Tensor, table: _Table) -> torch.Tensor:
        """Mismatched DAC, no noise: one bucket lookup per conversion, in place on ``seen``.

        ``code(a) = #{k : T_k <= a}`` for ``a = |seen|`` (see :class:`_Table`). With
        ``j(a) = trunc(min(a, J))`` (monotonic), every threshold in a lower bucket is below
        ``a`` and every one in a higher bucket above it, so
        ``code = base[j] + sum_d [a >= cand_d[j]]``, the candidates being the thresholds
        from the bucket's first one on (``+inf`` past the last). NaN is looked up as
        ``a = -1/2`` (bucket 0, below every threshold, all ``>= 0``) and put back at the end.
        The sign decision selects the half of the (duplicated) tables, so that it survives in
        the sign bit of ``index - half`` for the final ``copysign``.
        """
        index_dtype = table.index_dtype
        seen = seen.contiguous()  # flat views below (a copy only for a strided input)
        work = torch.empty_like(seen)
        flag = work.view(index_dtype)
        flag.copy_(~torch.signbit(seen))  # 1: sign decision +, 0: -
        nan = torch.isnan(seen)
        a = seen.abs_().clamp_(max=table.top).nan_to_num_(nan=-0.5)
        index = a.to(index_dtype)  # trunc: the bucket
        index.add_(flag, alpha=table.half).add_(table.offset)
        flat = index.view(-1)
        counts = work if len(table.candidates) == 1 else torch.zeros_like(a)
        for candidates in table.candidates:
            torch.index_select(candidates, 0, flat, out=work.view(-1))
            torch.ge(a, work, out=work)
            if counts is not work:
                counts.add_(work)
        code = torch.index_select(table.base, 0, flat, out=a.view(-1)).view_as(a)
        code.add_(counts)
        index.sub_(table.half)  # < 0 (sign bit set) where the sign decision was -
        return code.copysign_(index.view(a.dtype)).mul_(lsb).masked_fill_(nan, torch.nan)

    def _convert_steps(
        self,
        seen: torch.Tensor,
        lsb: torch.Tensor,
        generator: torch.Generator | None,
        binary: bool,
    ) -> torch.Tensor:
        """The reference loop with its temporaries reused, in place on ``seen``.

        Bit-identical to :meth:`_convert_loop`, noise included: the same draws, in the same
        order, from the same generator, and the same rounding: ``fl(v + fl(sigma * noise))``
        compared with ``trial = fl(level + w_i)``; the new level ``fl(level + keep * w_i)`` is
        ``trial`` where the bit is kept and ``level`` (plus an exact 0) where it is not. With an
        exact DAC (``binary``) the level is the code, so no code is accumulated.
        """
        p = self.params
        work = torch.empty_like(seen)  # the noisy value, then the decision, then keep * w_i

        def noisy(value: torch.Tensor) -> torch.Tensor:
            """``value + sigma_noise * noise``, rounded as the loop rounds it, in ``work``."""
            if generator is None:
                return value
            torch.randn(seen.shape, generator=generator, dtype=seen.dtype, out=work)
            return work.mul_(p.sigma_noise).add_(value)

        sign = torch.empty_like(seen)
        sign.copy_(torch.signbit(noisy(seen)))
        sign.mul_(-2.0).add_(1.0)  # +-1
        v = seen.mul_(sign).add_(0.5)
        level = torch.zeros_like(seen)
        trial = torch.empty_like(seen)
        code = level if binary else torch.zeros_like(seen)
        weights = self.cap_weights.to(device=seen.device, dtype=seen.dtype).movedim(-1, 0)
        for i in reversed(range(p.bits - 1)):
            torch.add(level, weights[i], out=trial)
            torch.ge(noisy(v), trial, out=work)  # 1.0 where bit i is kept
            if not binary:
                code.add_(work, alpha=float(2**i))
            level.add_(work.mul_(weights[i]))
        return code.mul_(sign).mul_(lsb).masked_fill_(torch.isnan(v), torch.nan)

    def _dac_state(self, dtype: torch.dtype, device: torch.device) -> _DacState:
        """What the fast paths need of the DAC weights, cached per dtype and device.

        Rebuilt when ``cap_weights`` is replaced (setup, loading, moving the module) or
        changed in place (its version counter).
        """
        weights = self.cap_weights
        try:
            version: int | None = weights._version
        except RuntimeError:  # inference tensors have no version counter
            version = None
        if self._cache_source is not weights or version is None or self._cache_version != version:
            self._cache = {}
            self._cache_source, self._cache_version = weights, version
        key = (dtype, str(device))
        if key not in self._cache:
            self._cache[key] = self._build_state(dtype, device)
        return self._cache[key]

    def _build_state(self, dtype: torch.dtype, device: torch.device) -> _DacState:
        magnitude_bits = self.params.bits - 1
        w = self.cap_weights.to(device=device, dtype=dtype)
        units, channels = w.shape[:2]
        finite = bool(torch.isfinite(w).all())
        ideal = 2.0 ** torch.arange(magnitude_bits, device=device, dtype=torch.float64)
        binary = bool(torch.equal(w.double(), ideal.expand_as(w)))
        # the closed form needs the integers up to 2**M exact in the dtype (and its bit patterns)
        closed_form = (
            dtype in BIT_PATTERN_DTYPES and 2.0**magnitude_bits * torch.finfo(dtype).eps <= 2
        )
        table = None
        smallest = 4 * units * channels * 2**magnitude_bits  # base + 1 candidate, two halves
        if (
            finite
            and not binary
            and dtype in (torch.float32, torch.float64)
            and 0 < smallest <= self.table_limit
        ):
            table = _Table.build(w.reshape(units * channels, magnitude_bits), units, channels)
            # past M candidates per bucket the decisions bit by bit cost about as much
            if table.entries > self.table_limit or len(table.candidates) > magnitude_bits:
                table = None
        return _DacState(finite=finite, binary=binary, closed_form=closed_form, table=table)

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
        self._clear_cache()
        adopt_buffer_shapes(self, state_dict, prefix, ["cap_weights", "offset"])
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
