"""The LUT device: a mapping and an update model built from measured conductance-versus-pulse data.

Both models read the same CSV file (parameter ``data``, see :mod:`txsim_lut_device.measurement`)
and take the device's range ``[g_min, g_max]`` from it, so a layer's check that its device and
update model agree holds whenever both name the same file (a layer's update slot inherits
``data`` from its device slot when it does not set it).

The update, per device, for a requested change ``dG`` at state ``G`` (``s = +1`` and the
potentiation curve for ``dG > 0``, ``s = -1`` and the depression curve for ``dG < 0``)::

    target = clip(G + dG, g_min, g_max)
    n*     = p(target) - p(G)                       pulse coordinate of the mean curve, >= 0
    n      = round(n*)                              stochastic (E[n] = n*) or nearest
    G_new  = clip(C(p(G) + n) + s * noise_scale * sigma_step * sqrt(n) * z,
                  g_min, g_max),                    z ~ N(0, 1)

with ``C`` the direction's mean curve, ``p`` its inverse and ``sigma_step`` the per-pulse noise
estimated from the data (or given), and ``G_new = G`` exactly where ``dG = 0`` or ``n = 0``.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch

from txsim_core.interfaces import DifferentialMapping, UpdateModel
from txsim_core.params import cell_bits_parameter, parameter
from txsim_lut_device.measurement import DeviceData, load_device_data


def _data_parameter() -> Any:
    return parameter(
        None,
        kind=str,
        optional=True,
        path=True,
        help="Path of the CSV file of measured conductance against pulse number (columns cycle, "
        "direction, pulse, conductance in siemens; see the README); a relative path is taken from "
        "the experiment file's folder, or from the working directory outside one. None: the "
        "bundled example, which is synthetic (an illustration of the format, not a measurement).",
    )


def _check_data(params: Any) -> None:
    """Read (and so check) the data file when the parameters are made."""
    load_device_data(params.data)  # raises ConfigError (a ValueError) naming file and line


@attrs.frozen(kw_only=True)
class LUTMappingParams:
    """Parameters of the LUT device as the arrays hold it."""

    data: str | None = _data_parameter()
    cell_bits: int | None = cell_bits_parameter(None, "levels evenly spaced in the measured range")

    def __attrs_post_init__(self) -> None:
        _check_data(self)


class LUTMapping(DifferentialMapping):
    """Weights on differential pairs of a measured device, within the range its data covers.

    Encoding is :class:`~txsim_core.interfaces.DifferentialMapping` (sign-magnitude, optionally
    bit-sliced) between ``g_min`` and ``g_max``: the range that both mean curves of the data
    cover (see :mod:`txsim_lut_device.measurement`).

    Attributes:
        measurement: the data the model was built from.
    """

    def __init__(self, params: LUTMappingParams) -> None:
        super().__init__(params)
        self.measurement: DeviceData = load_device_data(params.data)

    @property
    def g_min(self) -> float:
        return self.measurement.g_min

    @property
    def g_max(self) -> float:
        return self.measurement.g_max


@attrs.frozen(kw_only=True)
class LUTUpdateParams:
    """Parameters of the LUT update."""

    data: str | None = _data_parameter()
    rounding: str = parameter(
        "stochastic",
        kind=str,
        choices=("stochastic", "nearest"),
        help="How the pulse count n* = p(G + dG) - p(G) becomes whole pulses: 'stochastic' "
        "(floor(n*) + 1 with probability frac(n*), so that E[n] = n*) or 'nearest' (round; "
        "requests below half a pulse are lost, as on a device driven without stochastic pulses).",
    )
    noise_scale: float = parameter(
        1.0,
        low=0.0,
        help="Factor on the cycle-to-cycle noise: each update adds noise_scale * sigma_step * "
        "sqrt(n) of Gaussian noise. 0: no noise.",
    )
    sigma_step: float | None = parameter(
        None,
        unit="S",
        low=0.0,
        optional=True,
        help="Standard deviation of the change of one pulse, for both directions. None: "
        "estimated from the spread between the data's cycles, per direction (0 for a file with "
        "one cycle, e.g. a curve digitized from a figure: then set it here).",
    )

    def __attrs_post_init__(self) -> None:
        _check_data(self)


class _Tables:
    """Both mean curves as one table on one device and dtype, for a single batched lookup.

    Depression is stored as ``-C`` (so that it rises with the pulse number) before potentiation:
    every level of depression is negative and every level of potentiation positive, so the joined
    levels stay sorted and one search finds either curve (a device moving down looks up ``-G``).
    The pulse numbers of potentiation are shifted to follow those of depression.
    """

    def __init__(
        self, data: DeviceData, sigma_step: float | None, device: torch.device, dtype: torch.dtype
    ) -> None:
        dep, pot = data.depression, data.potentiation
        gap = float(np.diff(pot.pulses)[0])  # evenly spaced readings stay evenly spaced
        levels = np.concatenate([-dep.mean, pot.mean])
        pulses = np.concatenate([dep.pulses, pot.pulses + (dep.pulses[-1] + gap - pot.pulses[0])])
        self.inverse = PiecewiseLinear(levels, pulses, device, dtype)
        """``p(y)``: the pulse coordinate of a signed level ``y = s G``."""
        self.forward = PiecewiseLinear(pulses, levels, device, dtype)
        """``s C(p)``: the signed level after ``p`` pulses."""

        def tensor(values: Any) -> torch.Tensor:
            return torch.as_tensor(values, dtype=dtype, device=device)

        self.g_min, self.g_max = tensor(data.g_min), tensor(data.g_max)
        self.end_dep, self.end_pot = tensor(dep.pulses[-1]), tensor(pulses[-1])
        sigmas = [c.sigma_step if sigma_step is None else sigma_step for c in (dep, pot)]
        self.sigma_dep, self.sigma_pot = tensor(sigmas[0]), tensor(sigmas[1])


class PiecewiseLinear:
    """A piecewise-linear function through knots, evaluated element-wise on tensors.

    Linear between the knots, constant beyond the first and the last. Each segment is stored as
    (start, value at start, slope) so that one gather per element evaluates it.

    Args:
        xp: knots, shape ``(K,)``, ``K >= 2``, non-decreasing (a flat stretch, where two knots
            coincide, reads as its end).
        fp: values at the knots, shape ``(K,)``.
        device: where the tables live.
        dtype: their floating-point type.
    """

    def __init__(
        self, xp: np.ndarray, fp: np.ndarray, device: torch.device, dtype: torch.dtype
    ) -> None:
        xp, fp = np.asarray(xp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
        width, rise = np.diff(xp), np.diff(fp)
        has_width = width > 0
        slope = np.divide(rise, width, out=np.zeros_like(rise), where=has_width)
        start_value = np.where(has_width, fp[:-1], fp[1:])
        segments = np.stack([xp[:-1], start_value, slope], axis=1)
        self.segments = torch.as_tensor(segments, dtype=dtype, device=device)
        self.knots = torch.as_tensor(xp, dtype=dtype, device=device)
        self.low, self.high = float(xp[0]), float(xp[-1])
        uniform = bool(np.all(width == width[0])) and width[0] > 0
        self.spacing: float | None = float(width[0]) if uniform else None
        """Distance between evenly spaced knots (the segment is then computed, not searched
        for), else None."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The function at ``x`` (any shape; same device and dtype as the tables)."""
        x = x.clamp(self.low, self.high)
        last = self.segments.shape[0] - 1
        if self.spacing is None:
            i = torch.searchsorted(self.knots, x, right=True).sub_(1).clamp_(0, last)
        else:
            i = x.sub(self.low).div_(self.spacing).floor_().clamp_(0, last).long()
        # one gather of a (start, value, slope) row per element; index_select, not segments[i]:
        # advanced indexing is far slower on CPU
        start, value, slope = self.segments.index_select(0, i.view(-1)).unbind(-1)
        return (x - start.view(x.shape)).mul_(slope.view(x.shape)).add_(value.view(x.shape))


class LUTUpdate(UpdateModel):
    """The conductance change a measured device makes: pulses along its mean curves, plus noise.

    See the module docstring for the equations. Everything is element-wise and batched (one
    table lookup serves both directions); random numbers come from the generator given to
    :meth:`step`, on the conductances' device.

    Attributes:
        measurement: the data the model was built from.
    """

    def __init__(self, params: LUTUpdateParams) -> None:
        super().__init__(params)
        self.measurement: DeviceData = load_device_data(params.data)
        self._tables: dict[tuple[torch.device, torch.dtype], _Tables] = {}

    @property
    def g_min(self) -> float:
        return self.measurement.g_min

    @property
    def g_max(self) -> float:
        return self.measurement.g_max

    def _table(self, like: torch.Tensor) -> _Tables:
        key = (like.device, like.dtype)
        if key not in self._tables:
            self._tables[key] = _Tables(self.measurement, self.params.sigma_step, *key)
        return self._tables[key]

    def _positions(
        self, g: torch.Tensor, dg: torch.Tensor
    ) -> tuple[_Tables, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Table, direction (True: up), signed state ``y = s G``, ``p(G)`` and ``n*`` (>= 0)."""
        table = self._table(g)
        up = dg >= 0
        high = torch.where(up, table.g_max, -table.g_min)
        y = torch.where(up, g, -g).clamp_(max=high)
        y = torch.maximum(y, torch.where(up, table.g_min, -table.g_max))
        target = torch.minimum(y + dg.abs(), high)
        p0 = table.inverse(y)
        count = table.inverse(target).sub_(p0).clamp_min_(0)
        return table, up, y, p0, count

    def pulse_count(self, g: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
        """The continuous pulse count ``n* = p(clip(G + dG)) - p(G)`` of each request (>= 0)."""
        return self._positions(g, dg)[-1]

    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one update: whole pulses along the mean curve, noise, clipping to the range."""
        p = self.params
        table, up, y, p0, n = self._positions(g, dg)
        if p.rounding == "stochastic":
            u = torch.rand(g.shape, generator=generator, dtype=g.dtype, device=g.device)
            whole = torch.floor(n)
            n = whole.add_((u < n.sub_(whole)).to(g.dtype))
        else:
            n = n.round_()
        end = torch.where(up, table.end_pot, table.end_dep)
        moved = table.forward(torch.minimum(p0 + n, end)).sub_(y)
        if p.noise_scale > 0:
            z = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
            sigma = torch.where(up, table.sigma_pot, table.sigma_dep).mul_(p.noise_scale)
            moved.add_(z.mul_(n.sqrt()).mul_(sigma))
        moved = torch.where(n > 0, moved, 0.0)  # no pulse, no change (not even noise)
        new = torch.where(up, g + moved, g - moved).clamp_(self.g_min, self.g_max)
        return torch.where(dg == 0, g, new)
