"""The full scale of an analog-to-digital converter: fixed, or calibrated from the currents it converts.

The TxSim paper (section IV-B): "The maximum current through ADCs is data dependent and obtained by
collecting output distribution statistics." An ADC model that uses this module (the built-in
``uniform`` ADC and the ``sar`` plugin) takes the parameters of :class:`FullScaleParams` and keeps
one :class:`FullScale` sub-module, whose buffers hold the full scale so that it moves with the
layer between devices and is saved in its checkpoints.

Full scale ``FS`` (amperes): the current converted to the largest code; a converter with
``L = 2**(bits-1) - 1`` magnitude levels has ``LSB = FS / L`` and saturates beyond ``+-FS``.

* **Fixed**: ``full_scale`` set, in amperes. Nothing is calibrated.
* **Calibrated** (``full_scale=None``): ``FS`` is a statistic of ``|I|`` (the converter is signed
  and symmetric, so the magnitude of the differential currents matters):

  - ``calibration="max"``: the running maximum of ``|I|`` over the calibration minibatches (the
    paper's "maximum current"). Nothing the converter has seen during calibration saturates.
  - ``calibration="percentile"``: the mean, over the calibration minibatches, of each minibatch's
    ``percentile``-th percentile of ``|I|`` (linear interpolation between order statistics, as
    ``numpy.percentile``). Rare large currents then saturate instead of costing every other
    current resolution.

  ``calibration_scope="layer"`` computes one ``FS`` over all units (arrays and weight slices) and
  channels of the layer direction; ``"array"`` one ``FS`` per unit, over its channels.

  When the statistic is collected: a forward call is one minibatch. The full scale is updated

  1. during the first ``calibration_batches`` (K) calls in training mode (``module.train()``;
     PyTorch modules start in training mode), then frozen; by default (K = None) on every call
     in training mode, so that the full scale follows the currents as the weights grow (the
     paper collects "output distribution statistics over multiple training epochs"; a full
     scale frozen after a few minibatches saturates once the outputs grow);
  2. on every call inside :func:`calibrating` (an explicit calibration pass, any mode; it
     restarts the statistic unless ``reset=False``);
  3. on the first call of a converter that has seen no data yet, whatever the mode (so that a
     converter never converts with an undefined full scale: with K = 0 and no explicit pass,
     the first minibatch calibrates it).

  The buffers ``value`` (the full scale, shape ``(1,)`` or ``(units,)``, in amperes) and
  ``batches`` (how many minibatches the statistic holds) are saved in checkpoints; a loaded
  converter continues from them (frozen if ``batches >= K``). Evaluation (``module.eval()``)
  converts with the full scale that training reached.

  A calibrated full scale of 0 (every current seen was 0) makes the converter output 0.

* **Data-parallel training** (one process per replica, each with its share of every minibatch):
  inside :func:`synchronized_calibration` every replica folds the statistic of *all* replicas'
  currents into its full scale, so that the replicas keep one full scale and convert the same
  current to the same code. For ``calibration="max"`` the result is exactly the single-process
  full scale of the whole minibatch (the maximum of the replicas' maxima); for ``"percentile"``
  it is the mean of the replicas' percentiles weighted by their number of samples (an
  approximation of the whole minibatch's percentile).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs
import torch
import torch.distributed as dist

from txsim_core.compiled import FusedKernel, flat_alias
from txsim_core.errors import ConfigError
from txsim_core.interfaces.adc import CurrentParts
from txsim_core.params import parameter

__all__ = [
    "FullScale",
    "FullScaleParams",
    "adopt_buffer_shapes",
    "calibrating",
    "convert_sign_magnitude_",
    "percentile",
    "percentile_of_parts",
    "round_half_away",
    "signed_codes_",
    "synchronized_calibration",
    "to_lsb",
]

_REPLICA_GROUP: list[Any] = []
"""The process group of :func:`synchronized_calibration` while one is active (at most one entry)."""


@attrs.frozen(kw_only=True)
class FullScaleParams:
    """Parameters of an ADC's full scale; ADC parameter classes derive from this class."""

    full_scale: float | None = parameter(
        None,
        unit="A",
        low=0.0,
        low_open=True,
        optional=True,
        help="Current converted to the largest code; the converter saturates beyond +-full_scale. "
        "None: calibrated from the currents it converts (see `calibration`).",
    )
    calibration: str = parameter(
        "max",
        kind=str,
        choices=("max", "percentile"),
        help="Statistic of |I| that sets a calibrated full scale: 'max', the running maximum over "
        "the calibration minibatches (the paper's maximum current); 'percentile', the mean over "
        "those minibatches of each one's `percentile`-th percentile.",
    )
    percentile: float = parameter(
        99.9,
        low=0.0,
        low_open=True,
        high=100.0,
        help="Percentile of |I|, in percent, that sets the full scale when "
        "calibration='percentile'.",
    )
    calibration_scope: str = parameter(
        "layer",
        kind=str,
        choices=("layer", "array"),
        help="'layer': one calibrated full scale for every unit (array and weight slice) of the "
        "layer direction; 'array': one per unit.",
    )
    calibration_batches: int | None = parameter(
        None,
        kind=int,
        low=0,
        optional=True,
        help="Number of training-mode forward calls (minibatches) whose currents calibrate the "
        "full scale before it is frozen. None: every training minibatch (the statistics of the "
        "whole training, as the paper collects them). 0: only an explicit calibration pass "
        "(txsim_core.calibration.calibrating) or, failing that, the first call.",
    )


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, ties away from zero (``2.5 -> 3``, ``-2.5 -> -3``)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


BIT_PATTERN_DTYPES = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}
"""The integer type of each float type's bit pattern: the float types :func:`signed_codes_`
takes."""

CODE_CHUNK = 1 << 20
"""Values :func:`signed_codes_` rounds at a time on the CPU (its only temporary, their sign
bits, is 4 MiB for float32; a layer's part of currents, :data:`~txsim_core.crossbar.rows.
PART_CURRENTS`, is one chunk, and 2**18 was 8 % slower); one chunk elsewhere."""


def signed_codes_(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Round values in LSB to the codes of a sign-magnitude converter, in place.

    The code of ``x`` is ``s * min(floor(fl(|x| + 1/2)), levels)``: the magnitude rounds half
    away from zero (a converter with a half-LSB shift) and saturates at ``levels`` (``+-inf``
    included); the sign ``s`` is the sign bit of ``x``, so ``-0.0`` and small negative values
    give a negative zero code ``-0.0``. NaN stays NaN.

    The sign is carried in the bit patterns: taken with an integer AND before the magnitude is
    rounded and put back with an integer OR (a third of the time of ``copysign``, half that of
    multiplying by a sign).

    Args:
        x: values in LSB, float16, bfloat16, float32 or float64; overwritten with the codes.
        levels: the largest magnitude code, ``2**(bits-1) - 1``.

    Returns:
        ``x``, holding the codes (as values of its dtype).
    """
    bits = BIT_PATTERN_DTYPES.get(x.dtype)
    if bits is None:
        raise ConfigError(
            f"Expected values in one of {sorted(str(d) for d in BIT_PATTERN_DTYPES)}, but got "
            f"{x.dtype}."
        )
    work = x.contiguous()  # flat views below (a copy only for a strided input)
    flat = work.view(-1)
    chunk = CODE_CHUNK if x.device.type == "cpu" else max(flat.numel(), 1)
    signs = torch.empty(min(chunk, flat.numel()), dtype=bits, device=x.device)
    sign_bit = torch.iinfo(bits).min  # only the sign bit set
    for part in flat.split(chunk):
        sign = torch.bitwise_and(part.view(bits), sign_bit, out=signs[: part.numel()])
        part.abs_().add_(0.5).floor_().clamp_(max=levels)
        part.view(bits).bitwise_or_(sign)
    return x if work is x else x.copy_(work)


def to_lsb(
    current: torch.Tensor, full_scale: torch.Tensor, levels: int, *, in_place: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Express currents in LSB of a signed converter with ``levels`` magnitude levels.

    Shared by every ADC that uses :class:`FullScale`, so that converters of the same full scale
    and resolution compute bit-identical intermediate values.

    Args:
        current: currents in amperes, shape ``(B, units, channels)``.
        full_scale: the full scale in amperes, broadcastable to ``current`` (from
            :meth:`FullScale.forward`).
        levels: the largest magnitude code, ``2**(bits-1) - 1``.
        in_place: divide ``current`` itself (see :meth:`~txsim_core.interfaces.ADC.convert_in_place`)
            instead of a new tensor.

    Returns:
        ``x = current / LSB`` (dimensionless) and ``LSB = full_scale / levels`` (amperes). Where
        the full scale is 0, ``LSB`` is reported as 0 and ``x`` is computed with an LSB of 1 A
        (callers multiply codes by ``LSB``, so the output is 0).
    """
    divisor, lsb = _lsb(full_scale, levels)
    return torch.div(current, divisor, out=current if in_place else None), lsb


def _lsb(full_scale: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The divisor that expresses currents in LSB (the LSB, or 1 A where the full scale is 0)
    and the LSB that multiplies codes (0 where the full scale is 0), in amperes."""
    lsb = full_scale / levels
    positive = full_scale > 0
    return torch.where(positive, lsb, torch.ones_like(lsb)), torch.where(
        positive, lsb, torch.zeros_like(lsb)
    )


def _sign_magnitude_kernel(
    current: torch.Tensor, divisor: torch.Tensor, lsb: torch.Tensor, levels: torch.Tensor
) -> None:
    """:func:`convert_sign_magnitude_` as one expression, for :class:`FusedKernel`: the
    operations of :func:`to_lsb`, :func:`signed_codes_` and the product by the LSB, in the same
    dtype (``copysign`` puts back the sign bit of ``x`` as the integer OR does).

    ``current`` is flat, ``(N,)``; ``divisor`` and ``lsb`` are ``(1,)`` (one full scale) or
    ``(K,)``, repeating along ``current`` (one per unit and channel); ``levels`` is 0-d. Shapes
    that vary as these do keep one compilation per dtype and kind of full scale.
    """
    rows = current.view(-1, divisor.shape[0])
    x = rows / divisor
    magnitude = torch.floor(x.abs() + 0.5).clamp(max=levels)
    rows.copy_(torch.copysign(magnitude, x) * lsb)


_FUSED_SIGN_MAGNITUDE = FusedKernel(_sign_magnitude_kernel, "sign-magnitude ADC conversion")


def convert_sign_magnitude_(
    current: torch.Tensor, full_scale: torch.Tensor, levels: int
) -> torch.Tensor:
    """Convert currents in place to the values of their codes in an ideal signed converter.

    The value of ``I`` is ``signed_codes_(I / LSB, levels) * LSB`` with ``LSB = full_scale /
    levels`` (see :func:`to_lsb` and :func:`signed_codes_`; a full scale of 0 gives 0): the
    conversion of the ``uniform`` ADC without INL and of the exact ``sar`` ADC. On the CPU, a
    contiguous float32 or float64 tensor of at least :data:`~txsim_core.compiled.FUSED_MIN_VALUES`
    values without autograd history is converted in one fused loop
    (:class:`~txsim_core.compiled.FusedKernel`, bit-identical to the operations one by one;
    ``TXSIM_COMPILE=0`` turns it off); anything else by those operations, in place.

    Args:
        current: currents in amperes, ``(B, units, channels)``; overwritten with the values.
        full_scale: the full scale in amperes, ``(1, 1, 1)`` or ``(1, units, 1)``.
        levels: the largest magnitude code, ``2**(bits-1) - 1``.

    Returns:
        ``current``, holding the values (amperes).
    """
    divisor, lsb = _lsb(full_scale, levels)
    if _FUSED_SIGN_MAGNITUDE.takes(current):
        if divisor.numel() == 1:
            flat_divisor, flat_lsb = divisor.reshape(1), lsb.reshape(1)
        else:  # one value per unit and channel, repeated along the rows
            flat_divisor = divisor.expand_as(current)[0].reshape(-1)
            flat_lsb = lsb.expand_as(current)[0].reshape(-1)
        scales = (flat_alias(flat_divisor.contiguous()), flat_alias(flat_lsb.contiguous()))
        levels_tensor = torch.tensor(float(levels), dtype=current.dtype)
        if _FUSED_SIGN_MAGNITUDE(flat_alias(current), *scales, levels_tensor):
            return current
    return signed_codes_(current.div_(divisor), levels).mul_(lsb)


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q``-th percentile along the last dimension, interpolated linearly.

    The same definition as ``numpy.percentile(values, q, axis=-1)`` (method ``"linear"``): with
    ``n`` values sorted as ``v_0 <= ... <= v_{n-1}`` and ``h = q / 100 * (n - 1)``, the result is
    ``v_floor(h) + (h - floor(h)) * (v_ceil(h) - v_floor(h))``. Uses selection
    (:func:`torch.kthvalue`), not a full sort, and has no size limit (unlike
    :func:`torch.quantile`).

    Args:
        values: shape ``(..., n)`` with ``n >= 1``.
        q: the percentile, in [0, 100].
    """
    n = values.shape[-1]
    h = q / 100.0 * (n - 1)
    lo = int(h)  # floor, h >= 0
    hi = min(lo + 1, n - 1)
    work = values if values.dtype in (torch.float32, torch.float64) else values.float()
    v_lo = torch.kthvalue(work, lo + 1, dim=-1).values
    if hi == lo or h == lo:
        return v_lo
    v_hi = torch.kthvalue(work, hi + 1, dim=-1).values
    return v_lo + (h - lo) * (v_hi - v_lo)


PERCENTILE_BINS = 4096
"""Histogram bins per group in :func:`percentile_of_parts` (the values of one or two bins are
kept to select the order statistics)."""


@torch.no_grad()
def percentile_of_parts(
    parts: Iterable[torch.Tensor], q: float, per_unit: bool
) -> tuple[torch.Tensor, int] | None:
    """:func:`percentile` of ``|I|`` over a minibatch given in parts, exactly, in bounded memory.

    The same value as ``percentile(|I| flattened per group, q)`` of the whole minibatch (``per_unit``:
    one group per unit, ``I[:, u, :]``; else one group): three passes over the parts. The first
    finds each group's largest ``|I|`` (``top``); the second counts the values in
    :data:`PERCENTILE_BINS` bins ``floor(|I| * bins / top)`` (monotonic in ``|I|``, so the bins are
    ordered) and finds the bins that hold the two order statistics the interpolation needs; the
    third keeps only the values of those bins, sorts them and picks the order statistics.

    Args:
        parts: the minibatch's currents, ``(B_i, units, channels)`` each, iterable three times
            (each iteration yields the same values).
        q: the percentile, in [0, 100].
        per_unit: one percentile per unit instead of one for all.

    Returns:
        The percentile (``(units,)`` or ``(1,)``) and the minibatch's rows; None where there are
        no currents, or where some are not finite (then the caller needs them all at once).
    """
    top, rows, units, channels = None, 0, 0, 0
    for part in parts:
        if part.numel() == 0:
            continue
        magnitude = part.abs()
        largest = magnitude.amax(dim=(0, 2)) if per_unit else magnitude.amax().reshape(1)
        top = largest if top is None else torch.maximum(top, largest)
        rows, (units, channels) = rows + part.shape[0], tuple(part.shape[1:])
    if top is None or not bool(torch.isfinite(top).all()):
        return None
    groups = top.numel()
    n = rows * channels * (1 if per_unit else units)
    h = q / 100.0 * (n - 1)
    lo = int(h)
    hi = min(lo + 1, n - 1)
    scale = torch.where(top > 0, PERCENTILE_BINS / top, torch.zeros_like(top)).view(1, -1, 1)
    offsets = (torch.arange(units, device=top.device) * PERCENTILE_BINS).view(1, -1, 1)

    def bins(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``|I|`` and its bin index within the group (offset by the group's bins if per unit)."""
        magnitude = part.abs()
        index = (magnitude * scale).floor_().clamp_(max=PERCENTILE_BINS - 1).long()
        return magnitude, index + offsets if per_unit else index

    counts = torch.zeros(groups * PERCENTILE_BINS, dtype=torch.long, device=top.device)
    for part in parts:
        if part.numel() > 0:
            counts += torch.bincount(bins(part)[1].flatten(), minlength=counts.numel())
    cumulative = counts.view(groups, PERCENTILE_BINS).cumsum(-1)
    ranks = torch.tensor([[lo, hi]], device=top.device).expand(groups, 2).contiguous()
    found = torch.searchsorted(cumulative, ranks, right=True)  # the bins of ranks lo and hi
    below = torch.where(
        found[:, :1] > 0, cumulative.gather(1, (found[:, :1] - 1).clamp(min=0)), 0
    ).squeeze(1)  # values before the bin of rank lo
    first = (found[:, 0] + torch.arange(groups, device=top.device) * PERCENTILE_BINS).view(-1)
    last = (found[:, 1] + torch.arange(groups, device=top.device) * PERCENTILE_BINS).view(-1)
    kept_values, kept_groups = [], []
    for part in parts:
        if part.numel() == 0:
            continue
        magnitude, index = bins(part)
        group = index // PERCENTILE_BINS
        keep = (index >= first[group]) & (index <= last[group])
        kept_values.append(magnitude[keep])
        kept_groups.append(group[keep])
    values, group = torch.cat(kept_values), torch.cat(kept_groups)
    if values.dtype not in (torch.float32, torch.float64):
        values = values.float()  # as percentile() computes
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # by group, then by value
    values = values[order]
    start = torch.bincount(group, minlength=groups).cumsum(0) - torch.bincount(
        group, minlength=groups
    )
    v_lo = values[start + (lo - below)]
    if hi == lo or h == lo:
        return v_lo, rows
    v_hi = values[start + (hi - below)]
    return v_lo + (h - lo) * (v_hi - v_lo), rows


def adopt_buffer_shapes(
    module: torch.nn.Module, state_dict: Mapping[str, Any], prefix: str, names: Iterable[str]
) -> None:
    """Reshape lazily sized buffers to the shapes a checkpoint stores, before it is loaded.

    Buffers whose shape is known only after :meth:`~txsim_core.interfaces.ADC.setup` (one entry
    per unit or converter instance) start empty; call this at the start of a module's
    ``_load_from_state_dict`` so that a checkpoint loads into a module that was not set up yet.

    Args:
        module: the module that owns the buffers.
        state_dict: the state being loaded.
        prefix: the module's key prefix in ``state_dict``.
        names: the buffer names to adopt.
    """
    for name in names:
        stored = state_dict.get(prefix + name)
        current = getattr(module, name)
        if isinstance(stored, torch.Tensor) and stored.shape != current.shape:
            setattr(
                module, name, torch.empty(stored.shape, dtype=current.dtype, device=current.device)
            )


class FullScale(torch.nn.Module):
    """Holds, calibrates and serves the full scale of one ADC (see the module docstring).

    Args:
        params: an instance of :class:`FullScaleParams` (or of a class derived from it).

    Attributes:
        value: buffer, the full scale in amperes: shape ``(1,)`` for a fixed full scale or
            ``calibration_scope="layer"``, ``(units,)`` for ``"array"`` (empty until
            :meth:`setup` or the first call).
        batches: buffer, the number of minibatches the calibrated statistic holds.
        calibrating: set by :func:`calibrating`; while True every call updates the statistic.
    """

    value: torch.Tensor
    batches: torch.Tensor

    def __init__(self, params: FullScaleParams) -> None:
        super().__init__()
        self.params = params
        self.calibrating = False
        fixed = params.full_scale
        size = 1 if fixed is not None or params.calibration_scope == "layer" else 0
        start = float(fixed) if fixed is not None else 0.0
        self.register_buffer("value", torch.full((size,), start, dtype=torch.float64))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self._seen = 0  # mirror of `batches`, so that deciding to calibrate needs no device sync

    @property
    def is_fixed(self) -> bool:
        """Whether the full scale is a fixed parameter (not calibrated)."""
        return self.params.full_scale is not None

    @property
    def per_unit(self) -> bool:
        """Whether there is one calibrated full scale per unit (``calibration_scope="array"``)."""
        return not self.is_fixed and self.params.calibration_scope == "array"

    @property
    def seen_batches(self) -> int:
        """How many minibatches the calibrated statistic holds (0 for a fixed full scale)."""
        return self._seen

    def extra_repr(self) -> str:
        if self.is_fixed:
            return f"fixed={self.params.full_scale!r}"
        return (
            f"calibration={self.params.calibration!r}, scope={self.params.calibration_scope!r}, "
            f"batches={self._seen}/{self.params.calibration_batches}"
        )

    def setup(self, units: int) -> None:
        """Size the buffers for a layer direction of ``units`` units (keeps a matching state)."""
        if not self.per_unit or self.value.shape == (units,):
            return
        self.value = torch.zeros(units, dtype=self.value.dtype, device=self.value.device)
        self.batches.zero_()
        self._seen = 0

    def reset(self) -> None:
        """Forget the calibrated statistic; the next call calibrates again."""
        if self.is_fixed:
            return
        self.value.zero_()
        self.batches.zero_()
        self._seen = 0

    def zeros_matter(self) -> bool:
        """Whether 0 A currents in the next minibatch would move the full scale: only while a
        ``"percentile"`` statistic calibrates (a maximum ignores them)."""
        return self.params.calibration == "percentile" and self.wants_data()

    def wants_data(self) -> bool:
        """Whether the next call updates the calibrated statistic (see the module docstring)."""
        if self.is_fixed:
            return False
        return (
            self.calibrating
            or self._seen == 0
            or (
                self.training
                and (
                    self.params.calibration_batches is None
                    or self._seen < self.params.calibration_batches
                )
            )
        )

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """The full scale for converting ``current``, after updating it if calibrating.

        Args:
            current: shape ``(B, units, channels)``, in amperes.

        Returns:
            The full scale in amperes, shape ``(1, 1, 1)`` or ``(1, units, 1)``, in the dtype
            and on the device of ``current``.
        """
        self._check(current)
        if self.wants_data() and current.numel() > 0:
            self.observe(current)
        return self.value_for(current)

    def value_for(self, current: torch.Tensor) -> torch.Tensor:
        """The full scale for converting ``current`` as it is now, without calibrating (shape,
        dtype and device as :meth:`forward` gives them)."""
        self._check(current)
        return self.value.to(device=current.device, dtype=current.dtype).view(1, -1, 1)

    def _check(self, current: torch.Tensor) -> None:
        if current.dim() != 3:
            raise ConfigError(
                "Expected currents of shape (B, units, channels), but got shape "
                f"{tuple(current.shape)}."
            )
        if self.per_unit:
            self._check_units(current.shape[1], tuple(current.shape))

    def _check_units(self, units: int, shape: tuple[int, ...] | None = None) -> None:
        """Per-unit scope: size the full scale for ``units`` units, or check that it has them."""
        if self.value.numel() == 0:
            self.setup(units)
        if units != self.value.shape[0]:
            raise ConfigError(
                f"Expected currents of {self.value.shape[0]} units (as set up), but got "
                + (f"shape {shape}." if shape is not None else f"{units} units.")
            )

    @torch.no_grad()
    def observe(self, current: torch.Tensor) -> None:
        """Fold one minibatch of currents into the calibrated statistic."""
        current = current.detach()
        if self.params.calibration == "max":
            stat = self._largest(current)
        else:
            magnitude = current.abs()
            if self.per_unit:
                flat = magnitude.transpose(0, 1).reshape(magnitude.shape[1], -1)
            else:
                flat = magnitude.reshape(1, -1)
            stat = percentile(flat, self.params.percentile)
        self._fold(stat, current.shape[0])

    def _observe_percentile_parts(self, parts: CurrentParts) -> None:
        """Fold a minibatch given in parts into a percentile statistic (see
        :func:`percentile_of_parts`; non-finite currents are gathered and observed whole)."""
        found = percentile_of_parts(parts, self.params.percentile, self.per_unit)
        if found is not None:
            stat, rows = found
            if self.per_unit:
                self._check_units(stat.numel())
            self._fold(stat, rows)
            return
        whole = torch.cat([part.clone() for part in parts])
        self._check(whole)
        if whole.numel() > 0:
            self.observe(whole)

    @torch.no_grad()
    def convert_parts(
        self, parts: CurrentParts, convert: Callable[[torch.Tensor], torch.Tensor]
    ) -> bool:
        """An ADC's :meth:`~txsim_core.interfaces.ADC.convert_parts` for this full scale.

        Converts every part with ``convert`` (the ADC's conversion at the present full scale,
        in place) and calibrates from the minibatch as :meth:`forward` would from all of it:

        * not calibrating on this minibatch: one pass that converts;
        * ``"max"``, with a full scale from earlier minibatches: one pass that converts with it
          while it observes the minibatch's largest current; only where that current raised the
          full scale, a second pass converts again (the result is then that of the new full
          scale, as ever). Once the currents have stopped growing, most minibatches take one
          pass;
        * ``"max"`` on the first minibatch: a pass that observes, then one that converts;
        * ``"percentile"``: three passes that find the minibatch's percentile exactly
          (:func:`percentile_of_parts`), then one that converts.
        """
        if not self.wants_data():
            for part in parts:
                parts.emit(convert(part))
            return True
        if self.params.calibration != "max":
            self._observe_percentile_parts(parts)
            for part in parts:
                parts.emit(convert(part))
            return True
        speculate = self._seen > 0
        before = self.value.clone()
        stat, rows = None, 0
        for part in parts:
            self._check(part)
            if part.numel() > 0:
                largest = self._largest(part.detach())
                stat = largest if stat is None else torch.maximum(stat, largest)
                rows += part.shape[0]
            if speculate:
                parts.emit(convert(part))
        if stat is not None:
            self._fold(stat, rows)
        if not speculate or not torch.equal(self.value, before):
            for part in parts:
                parts.emit(convert(part))
        return True

    def _largest(self, current: torch.Tensor) -> torch.Tensor:
        """max ``|I|`` (per unit, or ``(1,)``), without a full-size ``|I|`` temporary (``amax``
        and ``amin`` one after the other: 1.2 times faster than ``aminmax`` on the CPU)."""
        if self.per_unit:
            return torch.maximum(current.amax(dim=(0, 2)), -current.amin(dim=(0, 2)))
        return torch.maximum(current.amax(), -current.amin()).reshape(1)

    def _fold(self, stat: torch.Tensor, rows: int) -> None:
        """Fold the statistic of one minibatch of ``rows`` rows into the full scale."""
        if _REPLICA_GROUP:
            stat = _combine_replicas(stat, self.params.calibration, rows)
        stat = stat.to(device=self.value.device, dtype=self.value.dtype)
        if self._seen == 0:
            self.value.copy_(stat)
        elif self.params.calibration == "max":
            torch.maximum(self.value, stat, out=self.value)
        else:  # running mean of the per-minibatch percentiles
            self.value.add_((stat - self.value) / (self._seen + 1))
        self._seen += 1
        self.batches.fill_(self._seen)

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
        adopt_buffer_shapes(self, state_dict, prefix, ["value"])
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._seen = int(self.batches.item())


@contextlib.contextmanager
def calibrating(module: torch.nn.Module, *, reset: bool = True) -> Iterator[torch.nn.Module]:
    """An explicit calibration pass: every ADC full scale inside ``module`` learns from each call.

    Use it around forward passes over calibration data (in any mode)::

        with torch.no_grad(), calibrating(model):
            for x, _ in calibration_batches:
                model(x)

    Each forward call of a converter inside the block is one minibatch of its statistic (running
    maximum, or mean of per-minibatch percentiles). After the block the full scales are frozen
    unless training-mode calls remain of the first ``calibration_batches`` (calls inside the block
    count towards them). Fixed full scales are left alone.

    Args:
        module: a model, layer or converter; every :class:`FullScale` among its sub-modules (and
            itself) calibrates.
        reset: restart the statistics at the start of the block (default); False continues them.
    """
    scales = [m for m in module.modules() if isinstance(m, FullScale)]
    previous = [s.calibrating for s in scales]
    try:
        for scale in scales:
            if reset:
                scale.reset()
            scale.calibrating = True
        yield module
    finally:
        for scale, was in zip(scales, previous, strict=True):
            scale.calibrating = was


def _combine_replicas(stat: torch.Tensor, calibration: str, samples: int) -> torch.Tensor:
    """The statistic of every replica's currents (see the module docstring)."""
    group = _REPLICA_GROUP[0]
    if calibration == "max":
        combined = stat.clone()
        dist.all_reduce(combined, op=dist.ReduceOp.MAX, group=group)
        return combined
    weighted = torch.cat([stat.double() * samples, stat.new_full((1,), samples).double()])
    dist.all_reduce(weighted, op=dist.ReduceOp.SUM, group=group)
    return (weighted[:-1] / weighted[-1]).to(stat.dtype)


@contextlib.contextmanager
def synchronized_calibration(group: Any = None) -> Iterator[None]:
    """Data-parallel training: every full scale calibrates from the currents of all replicas.

    Inside the block, each calibrating call of every :class:`FullScale` in this process joins a
    collective of ``group`` (``torch.distributed``) that combines the replicas' statistics (see
    the module docstring), so every replica must call its converters the same number of times in
    the same order, each with at least one sample: train with the same network and one share of
    every minibatch per replica. Use a group of its own (``torch.distributed.new_group()``) so
    that these collectives never interleave with those of ``DistributedDataParallel``.

    Args:
        group: the process group of the replicas; None is the default group.
    """
    if _REPLICA_GROUP:
        raise ConfigError("Expected one synchronized_calibration block at a time, but got two.")
    _REPLICA_GROUP.append(group)
    try:
        yield
    finally:
        _REPLICA_GROUP.clear()
