"""Per-device errors sampled once when a layer programs its arrays: variation and stuck devices.

Two tensors describe them: ``scale``, each device's variation factor (a working device reads
``g * scale``), and ``stuck``, an ``int8`` code per device (0: works, 1: stuck at ``g_min``,
2: stuck at ``g_max``; a stuck device reads that value, exact in the conductances' dtype).

:class:`DeviceErrorMapping` adds them to txsim's differential encoding; device plugins
(txsim-reram, txsim-spintronic) build their mapping models on it.
"""

from __future__ import annotations

from typing import Any

import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import DifferentialMapping
from txsim_core.params import parameter

VARIATIONS = ("lognormal", "gaussian")
"""The variation distributions :func:`sample_device_errors` knows."""


def variation_parameter() -> Any:
    """The ``variation`` field: which distribution device-to-device variation follows."""
    return parameter(
        "lognormal",
        kind=str,
        choices=VARIATIONS,
        help="Distribution of the device-to-device variation: 'lognormal' (G * exp(sigma z)) or "
        "'gaussian' (G * (1 + sigma z), z truncated so that G stays positive).",
    )


def variation_sigma_parameter() -> Any:
    """The ``variation_sigma`` field: the spread of the variation."""
    return parameter(
        0.0,
        low=0.0,
        high=5.0,
        help="Spread of the device-to-device variation, relative (std of ln G for 'lognormal', "
        "of G/G_ideal for 'gaussian'); 0: none.",
    )


def stuck_parameter(where: str) -> Any:
    """A ``stuck_<where>_fraction`` field (``where`` is ``"min"`` or ``"max"``)."""
    state = "lowest conductance (stuck off)" if where == "min" else "highest one (stuck on)"
    return parameter(0.0, low=0.0, high=1.0, help=f"Fraction of devices stuck at the {state}.")


def check_stuck_fractions(params: Any) -> None:
    """Raise ValueError unless ``stuck_min_fraction + stuck_max_fraction <= 1``."""
    total = params.stuck_min_fraction + params.stuck_max_fraction
    if total > 1.0:
        raise ValueError(
            "Expected `stuck_min_fraction` + `stuck_max_fraction` to be at most 1, but got "
            f"{params.stuck_min_fraction!r} + {params.stuck_max_fraction!r} = {total!r}."
        )


def sample_device_errors(
    shape: torch.Size | tuple[int, ...],
    generator: torch.Generator,
    *,
    variation: str,
    sigma: float,
    stuck_min: float,
    stuck_max: float,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Sample the ``(scale, stuck)`` of every device; None where that part is exact.

    Args:
        shape: the shape of the conductance tensor.
        generator: the random generator; tensors are made on its device (``scale`` in the
            default dtype).
        variation: ``"lognormal"``: ``scale = exp(sigma * z)``, ``z ~ N(0, 1)`` (sigma is the
            standard deviation of ``ln G``; the median is kept). ``"gaussian"``:
            ``scale = 1 + sigma * z`` with ``z ~ N(0, 1)`` truncated to ``z > -1/sigma``, so that
            every conductance stays positive (the cut removes a fraction ``Phi(-1/sigma)``
            of the distribution: 3e-7 for sigma = 0.2, 4e-4 for sigma = 0.3).
        sigma: the spread of the variation, dimensionless; 0 for none.
        stuck_min: fraction of devices stuck at ``g_min``.
        stuck_max: fraction of devices stuck at ``g_max``.

    Returns:
        ``scale`` (None when sigma is 0) and ``stuck`` (None when no device sticks).
    """
    device, dtype = generator.device, torch.get_default_dtype()
    scale = None
    if sigma > 0:
        if variation == "lognormal":
            z = torch.randn(shape, generator=generator, device=device, dtype=torch.float64)
            scale = torch.exp(sigma * z)
        else:  # truncated normal by inversion: exact, batched, no rejection loop
            cut = torch.special.ndtr(torch.tensor(-1.0 / sigma, dtype=torch.float64)).to(device)
            u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
            z = torch.special.ndtri(cut + u * (1.0 - cut))
            scale = (1.0 + sigma * z).clamp(min=torch.finfo(dtype).tiny)
        scale = scale.to(dtype)
    if stuck_min + stuck_max <= 0:
        return scale, None
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    stuck = torch.zeros(shape, dtype=torch.int8, device=device)
    stuck.masked_fill_(u < stuck_min, 1)
    stuck.masked_fill_((u >= stuck_min) & (u < stuck_min + stuck_max), 2)
    return scale, stuck


def apply_device_errors(
    g: torch.Tensor,
    scale: torch.Tensor | None,
    stuck: torch.Tensor | None,
    g_min: float,
    g_max: float,
) -> torch.Tensor:
    """The conductances devices really have, in ``g``'s dtype and on its device.

    Args:
        g: ideal conductances, in siemens.
        scale: variation factors from :func:`sample_device_errors`, or None.
        stuck: stuck codes from :func:`sample_device_errors`, or None.
        g_min: the value of a device stuck at its lowest conductance, in siemens.
        g_max: the value of a device stuck at its highest conductance, in siemens.
    """
    real = g if scale is None else g * scale.to(g.dtype)
    if stuck is None:
        return real
    bounds = torch.tensor([g_min, g_max], dtype=g.dtype, device=g.device)
    return torch.where(stuck == 0, real, torch.where(stuck == 1, bounds[0], bounds[1]))


class DeviceErrorMapping(DifferentialMapping):
    """Differential encoding plus device-to-device variation and stuck devices.

    The parameter class must have the fields ``variation``, ``variation_sigma``,
    ``stuck_min_fraction`` and ``stuck_max_fraction`` (and ``cell_bits``); subclasses provide
    ``g_min`` and ``g_max``. :meth:`setup` samples each device's variation factor and stuck state
    once (again when called again); :meth:`realize` applies them. The samples are buffers
    (``device_scale``, ``device_stuck``), so they follow the layer between devices and are saved
    in its checkpoints.
    """

    device_scale: torch.Tensor | None
    device_stuck: torch.Tensor | None

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.register_buffer("device_scale", None)
        self.register_buffer("device_stuck", None)

    @property
    def has_device_errors(self) -> bool:
        """Whether any device varies or sticks (else :meth:`realize` is exact)."""
        p = self.params
        return p.variation_sigma > 0 or p.stuck_min_fraction + p.stuck_max_fraction > 0

    def setup(self, shape: torch.Size, generator: torch.Generator) -> None:
        """Sample every device's variation and stuck state, on the generator's device."""
        p = self.params
        self.device_scale, self.device_stuck = sample_device_errors(
            torch.Size(shape),
            generator,
            variation=p.variation,
            sigma=p.variation_sigma,
            stuck_min=p.stuck_min_fraction,
            stuck_max=p.stuck_max_fraction,
        )

    def realize(self, g: torch.Tensor) -> torch.Tensor:
        """``G_ideal * scale`` for working devices, exactly ``G_min``/``G_max`` for stuck ones."""
        if not self.has_device_errors:
            return g
        sampled = self.device_scale if self.device_scale is not None else self.device_stuck
        if sampled is None:
            raise ConfigError(
                "Expected setup(shape, generator) to be called before realize() on a device with "
                "variation or stuck devices, but it was not."
            )
        if g.shape != sampled.shape:
            raise ConfigError(
                f"Expected conductances of the shape given to setup(), "
                f"{tuple(sampled.shape)}, but got {tuple(g.shape)}."
            )
        return apply_device_errors(g, self.device_scale, self.device_stuck, self.g_min, self.g_max)
