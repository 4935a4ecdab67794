"""Phase-change memory (PCM) devices: the ``pcm`` mapping model and the ``pcm`` update model.

A PCM cell can only be made *more* conductive gradually (partial crystallisation by SET pulses);
making it less conductive is an abrupt RESET to the amorphous state. A signed weight is therefore a
differential pair of devices, each only ever SET during training, and a pair whose devices fill
up is *refreshed*: both devices are RESET and the pair's difference is reprogrammed onto one
side. Between programming and reading, PCM conductance drifts down as a power law in time.

Equations (see the README for their sources and every default):

* SET (mean), continuous-pulse limit of the exponential-step law of aihwkit's ``PCMPresetDevice``
  (a fit to Nandakumar et al. 2020). With ``x = (G - g_min) / span`` and a request
  ``rho = r / span``::

      dx/dn = delta0 * (1 + A * exp(-gamma * x))          (n: pulse count)
      x_new - x = log1p(expm1(L * rho) * (1 + A * exp(-gamma * x))) / gamma,
      L = log1p(expm1(gamma) / (1 + A))

  so that a request of one full span starting from ``g_min`` ends exactly at ``g_max``.
* Write noise: ``n = set_pulses * rho`` pulses, each with standard deviation
  ``sigma_p = write_noise * (delta(x) + write_noise_add + write_noise_slope * x) * span``
  (aihwkit's ExpStep "complex noise"); variances add: ``sigma = sqrt(n) * sigma_p``. The
  increment is lognormal with that mean and standard deviation, so a SET never lowers G.
* Refresh programming noise (aihwkit ``PCMLikeNoiseModel``, Nandakumar et al. ICECS 2019)::

      sigma_prog(G_T) = g_max / 25 * (0.26348 + 1.9650 q - 1.1731 q**2),  q = G_T / g_max

* Drift: ``G(t_read) = G(t0) * (t_read / t0) ** (-nu)`` with ``nu ~ N(drift_nu_mean, drift_nu_std)``
  clipped at 0, one per device, sampled in :meth:`PCMMapping.setup`.
"""

from __future__ import annotations

import math

import attrs
import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import DifferentialMapping, UpdateModel
from txsim_core.params import (
    ConductanceRange,
    cell_bits_parameter,
    check_conductance_range,
    conductance_parameter,
    parameter,
)

# Programming-noise polynomial of aihwkit's PCMLikeNoiseModel (Nandakumar et al., ICECS 2019):
# sigma in uS for a device of g_max = 25 uS, as a function of q = G_target / g_max.
PROG_NOISE_COEFFS = (0.26348, 1.9650, -1.1731)
PROG_NOISE_G_MAX_REFERENCE = 25e-6  # S

# Largest coefficient of variation used for the lognormal write noise. Only requests below
# ~1e-10 of a span reach it; their mean stays exact, their variance is understated.
_MAX_CV = 1e6


def _conductance(default: float, which: str) -> float:
    return conductance_parameter(
        default,
        f"{which} conductance of a PCM device (must match between the pcm mapping and "
        "update models).",
    )


def programming_noise_std(g_target: torch.Tensor, g_max: float) -> torch.Tensor:
    """Standard deviation of programming a PCM device to ``g_target`` (program-and-verify).

    The polynomial of aihwkit's ``PCMLikeNoiseModel`` (fitted in uS for ``g_max = 25 uS``,
    Nandakumar et al., ICECS 2019), scaled with ``g_max``.

    Args:
        g_target: target conductances in siemens.
        g_max: the device's highest conductance in siemens.

    Returns:
        The standard deviation in siemens, same shape as ``g_target``.
    """
    q = g_target / g_max
    c0, c1, c2 = PROG_NOISE_COEFFS
    poly = c0 + c1 * q + c2 * q * q
    return (poly * (g_max / PROG_NOISE_G_MAX_REFERENCE) * 1e-6).clamp_min(0.0)


# --------------------------------------------------------------------------------------------
# Mapping: how PCM devices read back (drift, device-to-device variation)
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PCMMappingParams:
    """Parameters of the ``pcm`` mapping model."""

    g_min: float = _conductance(0.25e-6, "Lowest (fully RESET, amorphous)")
    g_max: float = _conductance(25e-6, "Highest (fully SET, crystalline)")
    cell_bits: int | None = cell_bits_parameter(None)
    drift_nu_mean: float = parameter(
        0.05,
        low=0.0,
        high=1.0,
        help="Mean drift exponent nu of G(t) = G(t0) * (t / t0)^-nu.",
    )
    drift_nu_std: float = parameter(
        0.01,
        low=0.0,
        high=1.0,
        help="Device-to-device standard deviation of the drift exponent (a normal spread, "
        "clipped so that nu >= 0).",
    )
    drift_t0: float = parameter(
        20.0,
        unit="s",
        low=0.0,
        low_open=True,
        help="Time after programming at which a device has its programmed conductance "
        "(the reference time of the drift law).",
    )
    t_read: float | None = parameter(
        None,
        unit="s",
        low=0.0,
        low_open=True,
        optional=True,
        help="Time after programming at which the devices are read, >= drift_t0. "
        "None: read at drift_t0 (no drift).",
    )
    d2d_std: float = parameter(
        0.0,
        low=0.0,
        high=1.0,
        help="Relative device-to-device variation: each device's conductance is multiplied by "
        "a fixed factor 1 + d2d_std * N(0, 1) (clipped at 0), sampled once per device.",
    )

    def __attrs_post_init__(self) -> None:
        check_conductance_range(self)
        if self.t_read is not None and self.t_read < self.drift_t0:
            raise ValueError(
                "Expected `t_read` to be at least `drift_t0` (the drift law starts at t0), "
                f"but got t_read={self.t_read!r}, drift_t0={self.drift_t0!r}."
            )


class PCMMapping(ConductanceRange, DifferentialMapping):
    """PCM devices on differential pairs (linear sign-magnitude encoding, optionally sliced).

    :meth:`setup` samples, per device, a drift exponent ``nu`` and a variation factor; then
    :meth:`realize` returns ``g * factor * (t_read / t0) ** (-nu)``. Drift can take a device
    below ``g_min``: that is the conductance it really has when read.
    """

    drift_nu: torch.Tensor | None
    d2d_gain: torch.Tensor | None

    def __init__(self, params: PCMMappingParams) -> None:
        super().__init__(params)
        self.register_buffer("drift_nu", None)
        self.register_buffer("d2d_gain", None)

    @property
    def drift_time_ratio(self) -> float:
        """``t_read / t0``: 1 when the devices are read at the reference time (no drift)."""
        p = self.params
        return 1.0 if p.t_read is None else float(p.t_read / p.drift_t0)

    def _needs_samples(self) -> bool:
        p = self.params
        return (self.drift_time_ratio != 1.0 and p.drift_nu_std > 0.0) or p.d2d_std > 0.0

    def setup(self, shape: torch.Size, generator: torch.Generator | None) -> None:
        """Sample each device's drift exponent and variation factor.

        Args:
            shape: the shape of the layer's conductance tensor.
            generator: the layer's random generator (its device is where samples are made);
                None uses torch's global generator on the CPU.
        """
        p = self.params
        shape = torch.Size(shape)
        device = generator.device if generator is not None else torch.device("cpu")
        z_nu = torch.randn(shape, generator=generator, device=device)
        z_d2d = torch.randn(shape, generator=generator, device=device)
        self.drift_nu = (p.drift_nu_mean + p.drift_nu_std * z_nu).clamp_min(0.0)
        self.d2d_gain = (1.0 + p.d2d_std * z_d2d).clamp_min(0.0)

    def read_factor(self, g: torch.Tensor) -> torch.Tensor | float:
        """The factor ``realize`` multiplies ``g`` by: variation times drift.

        Args:
            g: ideal conductances (for their shape, dtype and device).
        """
        p = self.params
        ratio = self.drift_time_ratio
        if not self._needs_samples():
            return ratio ** (-p.drift_nu_mean)
        if self.drift_nu is None or self.d2d_gain is None:
            raise ConfigError(
                "Expected `setup(shape, generator)` to be called before `realize` (the pcm "
                "device samples per-device drift exponents and variation there), but it was not."
            )
        shape = self.drift_nu.shape
        if g.dim() < len(shape) or g.shape[g.dim() - len(shape) :] != shape:
            raise ConfigError(
                f"Expected conductances whose trailing shape is {tuple(shape)} (as passed to "
                f"setup), but got shape {tuple(g.shape)}."
            )
        nu = self.drift_nu.to(device=g.device, dtype=g.dtype)
        gain = self.d2d_gain.to(device=g.device, dtype=g.dtype)
        if ratio == 1.0:
            return gain
        return gain * torch.exp(-math.log(ratio) * nu)

    def realize(self, g: torch.Tensor) -> torch.Tensor:
        """The conductances read at ``t_read``: ``g * gain * (t_read / t0) ** (-nu)``.

        Args:
            g: ideal (programmed) conductances in siemens, shape as passed to :meth:`setup`.
        """
        factor = self.read_factor(g)
        if isinstance(factor, float) and factor == 1.0:
            return g
        return g * factor


# --------------------------------------------------------------------------------------------
# Update: gradual SET, write noise, pair refresh
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PCMUpdateParams:
    """Parameters of the ``pcm`` update model."""

    g_min: float = _conductance(0.25e-6, "Lowest (fully RESET, amorphous)")
    g_max: float = _conductance(25e-6, "Highest (fully SET, crystalline)")
    set_a: float = parameter(
        27.235,
        low=0.0,
        high=1e6,
        help="A of the SET step law dx/dn ~ 1 + A exp(-gamma x): a step at g_min is "
        "(1 + A) / (1 + A exp(-gamma)) times one at g_max. 0: linear device.",
    )
    set_gamma: float = parameter(
        5.0,
        low=0.0,
        high=100.0,
        help="gamma of the SET step law dx/dn ~ 1 + A exp(-gamma x), x = (G - g_min) / span. "
        "0: linear device.",
    )
    set_pulses: float = parameter(
        73.0,
        low=1.0,
        high=1e9,
        help="Number of identical SET pulses that take a device from g_min to g_max; sets the "
        "pulse count n = set_pulses * r / span over which write noise accumulates.",
    )
    write_noise: float = parameter(
        0.6,
        low=0.0,
        high=100.0,
        help="Cycle-to-cycle noise of one SET pulse: sigma_p = write_noise * (delta(G) + "
        "write_noise_add * span + write_noise_slope * (G - g_min)). 0: no write noise.",
    )
    write_noise_add: float = parameter(
        0.021,
        low=0.0,
        high=100.0,
        help="State-independent part of sigma_p / write_noise, as a fraction of the span.",
    )
    write_noise_slope: float = parameter(
        0.108,
        low=0.0,
        high=100.0,
        help="Growth of sigma_p / write_noise with (G - g_min) (dimensionless).",
    )
    refresh: bool = parameter(
        True,
        kind=bool,
        help="Check every pair after each update and refresh those that meet the criterion of "
        "refresh_upper and refresh_lower. False: never refresh.",
    )
    refresh_upper: float = parameter(
        0.75,
        low=0.0,
        low_open=True,
        high=1.0,
        help="Refresh a pair when its larger device has reached g_min + refresh_upper * span "
        "and its smaller device is above g_min + refresh_lower * span.",
    )
    refresh_lower: float = parameter(
        0.25,
        low=0.0,
        high=1.0,
        high_open=True,
        help="Refresh a pair only when its smaller device is above g_min + refresh_lower * "
        "span (otherwise a refresh frees little range); must be below refresh_upper.",
    )
    prog_noise_scale: float = parameter(
        1.0,
        low=0.0,
        high=100.0,
        help="Scale of the programming noise sigma_prog(G_T) of the device reprogrammed by a "
        "refresh. 0: exact reprogramming.",
    )

    def __attrs_post_init__(self) -> None:
        check_conductance_range(self)
        if self.refresh_lower >= self.refresh_upper:
            raise ValueError(
                "Expected `refresh_lower` to be smaller than `refresh_upper`, but got "
                f"refresh_lower={self.refresh_lower!r}, refresh_upper={self.refresh_upper!r}."
            )


class PCMUpdate(ConductanceRange, UpdateModel):
    """PCM differential-pair update: the net request of each pair SETs one device.

    For each pair the net request ``d = dg[..., 0, :, :] - dg[..., 1, :, :]`` is written as a
    gradual SET of ``r = |d|`` on the positive device (``d > 0``) or on the negative device
    (``d < 0``); the other device is untouched. The SET follows the exponential-step law
    (:meth:`set_mean`), saturates at ``g_max`` and has lognormal write noise. Afterwards every
    pair whose larger device has reached ``refresh_upper`` of the span while its smaller one is
    above ``refresh_lower`` is refreshed: both devices are RESET to ``g_min`` and the difference
    ``G+ - G-`` is reprogrammed onto the device of its sign, with programming noise
    ``sigma_prog`` (:func:`programming_noise_std`).
    """

    def _set_moments(
        self, g: torch.Tensor, r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean and standard deviation of SET increments, in units of the span.

        With ``x = (g - g_min) / span`` and ``rho = r / span``, the mean is the closed-form
        solution of ``dx/dn = delta0 * (1 + A exp(-gamma x))`` over the pulses ``rho`` stands for,
        ``log1p(expm1(L * rho) * (1 + A exp(-gamma x))) / gamma`` with
        ``L = log1p(expm1(gamma) / (1 + A))`` (so ``rho = 1`` takes ``x = 0`` to ``x = 1``), and
        the standard deviation ``sqrt(set_pulses * rho) * write_noise * (delta + add + slope * x)``
        with ``delta`` the mean of one pulse (``rho = 1 / set_pulses``); None when
        ``write_noise == 0``. Fresh tensors, safe to modify in place.
        """
        p = self.params
        span = self.g_max - self.g_min
        x = (g - self.g_min).div_(span).clamp_(0.0, 1.0)
        rho = r.clamp_min(0.0).div_(span)
        if p.set_gamma == 0.0 or p.set_a == 0.0:  # constant step: a linear device
            mean = rho.clone()
            pulse: torch.Tensor | float = 1.0 / p.set_pulses
        else:
            rate = math.log1p(math.expm1(p.set_gamma) / (1.0 + p.set_a))
            factor = x.mul(-p.set_gamma).exp_().mul_(p.set_a).add_(1.0)  # 1 + A exp(-gamma x)
            mean = torch.expm1(rho * rate).mul_(factor).log1p_().div_(p.set_gamma)
            one_pulse = math.expm1(rate / p.set_pulses)
            pulse = factor.mul_(one_pulse).log1p_().div_(p.set_gamma)  # mean of one pulse
        if p.write_noise == 0.0:
            return mean, None
        sigma = x.mul_(p.write_noise_slope).add_(pulse).add_(p.write_noise_add)
        sigma.mul_(rho.mul_(p.set_pulses).sqrt_()).mul_(p.write_noise)
        return mean, sigma

    def set_mean(self, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Mean increment (siemens, before saturation at ``g_max``) of a SET request ``r``.

        Args:
            g: present conductances of the devices being SET, in siemens.
            r: requested increase, in siemens (>= 0), same shape.
        """
        return self._set_moments(g, r)[0].mul_(self.g_max - self.g_min)

    def write_noise_std(self, g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Standard deviation (siemens) of the SET increment for a request ``r`` at ``g``.

        ``sigma = sqrt(set_pulses * r / span) * write_noise * (delta + write_noise_add * span +
        write_noise_slope * (G - g_min))``, where ``delta`` is the mean increment of one pulse.

        Args:
            g: present conductances of the devices being SET, in siemens.
            r: requested increase, in siemens (>= 0), same shape.
        """
        sigma = self._set_moments(g, r)[1]
        if sigma is None:
            return torch.zeros_like(g)
        return sigma.mul_(self.g_max - self.g_min)

    @torch.no_grad()
    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one update (SET of the side the net request points to, then refresh).

        Args:
            g: present conductances in siemens, shape ``(..., 2, N, M)``; dimension -3 holds the
                positive and negative device of each pair.
            dg: requested signed change in siemens, same shape, learning rate applied.
            generator: random generator for write and programming noise; None: torch's global.

        Returns:
            New conductances, same shape, dtype and device as ``g``, in ``[g_min, g_max]``.
        """
        if g.dim() < 3 or g.shape[-3] != 2:
            raise ConfigError(
                "Expected conductances of shape (..., 2, N, M) (a positive and a negative "
                f"device per pair), but got shape {tuple(g.shape)}."
            )
        if dg.shape != g.shape:
            raise ConfigError(
                f"Expected `dg` of the same shape as `g`, {tuple(g.shape)}, but got "
                f"{tuple(dg.shape)}."
            )
        p = self.params
        g_min, g_max = self.g_min, self.g_max
        dg = dg.to(dtype=g.dtype, device=g.device)
        g_pos, g_neg = g[..., 0, :, :], g[..., 1, :, :]
        net = dg[..., 0, :, :] - dg[..., 1, :, :]
        positive = net > 0
        g_side = torch.where(positive, g_pos, g_neg)

        # Gradual SET of the side the net request points to (r = 0 gives mean = sigma = 0).
        increment, sigma = self._set_moments(g_side, net.abs_())
        if sigma is not None:  # lognormal with mean `increment` and std `sigma`
            tiny = torch.finfo(g.dtype).tiny
            s2 = sigma.div_(increment.clamp_min(tiny)).clamp_(max=_MAX_CV).square_().log1p_()
            z = torch.randn(s2.shape, generator=generator, dtype=g.dtype, device=g.device)
            factor = z.mul_(s2.sqrt()).sub_(s2.mul_(0.5)).exp_()
            increment.mul_(factor)
        g_side = increment.mul_(g_max - g_min).add_(g_side).clamp_(max=g_max)
        g_pos = torch.where(positive, g_side, g_pos)
        g_neg = torch.where(positive, g_neg, g_side)

        if p.refresh:
            g_pos, g_neg = self._refresh(g_pos, g_neg, generator)
        return torch.stack((g_pos, g_neg), dim=-3).clamp_(g_min, g_max)

    def refresh_mask(self, g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:
        """Which pairs the refresh criterion selects (boolean, shape of ``g_pos``).

        A pair is selected when its larger device is at least ``g_min + refresh_upper * span``
        and its smaller device is above ``g_min + refresh_lower * span``.

        Args:
            g_pos: conductances of the positive devices, in siemens.
            g_neg: conductances of the negative devices, same shape.
        """
        p = self.params
        span = self.g_max - self.g_min
        upper = min(self.g_min + p.refresh_upper * span, self.g_max)
        lower = self.g_min + p.refresh_lower * span
        return (torch.maximum(g_pos, g_neg) >= upper) & (torch.minimum(g_pos, g_neg) > lower)

    def _refresh(
        self, g_pos: torch.Tensor, g_neg: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RESET both devices of the selected pairs and reprogram the difference on one side.

        Works in place on ``g_pos`` and ``g_neg`` (fresh tensors made by :meth:`step`) and only
        on the selected pairs, which are usually few.
        """
        p = self.params
        g_min, g_max = self.g_min, self.g_max
        index = self.refresh_mask(g_pos, g_neg).nonzero(as_tuple=True)  # (host sync on CUDA)
        if index[0].numel() == 0:
            return g_pos, g_neg
        diff = g_pos[index] - g_neg[index]
        target = diff.abs().add_(g_min)
        if p.prog_noise_scale > 0.0:
            z = torch.randn(
                target.shape, generator=generator, dtype=target.dtype, device=target.device
            )
            noise = programming_noise_std(target, g_max).mul_(z).mul_(p.prog_noise_scale)
            target.add_(noise)
        target.clamp_(g_min, g_max)
        to_pos = diff >= 0
        g_pos.index_put_(index, torch.where(to_pos, target, g_min))
        g_neg.index_put_(index, torch.where(to_pos, g_min, target))
        return g_pos, g_neg
