"""A weight matrix stored on crossbar arrays: the state and the three phases of one layer.

Layout. A layer of ``K`` inputs and ``M`` outputs is tiled into ``T_r x T_c`` arrays of
``rows x cols`` cells (inputs on rows, outputs on columns). Its trained state is the tensor of ideal
conductances ``conductance`` of shape ``(T_r, T_c, S, 2, rows, cols)``: S weight slices, each a
differential pair. Cells beyond ``K`` or ``M`` stay at ``g_min`` (weight 0) and still load the
circuit; with an exact solver they carry no current, and a single array (``K <= rows``, or
``M <= cols``) is stored cropped to the layer.

Scaling. A digital input vector ``x`` is divided by its sample's largest magnitude ``s_x`` and
quantized to the input precision: ``x_n`` in [-1, 1]. The DAC turns ``x_n`` into the voltages of
P passes with pass weights ``a_p`` (1/V); each array, slice and pass yields the differential
column currents ``I = V @ (G_eff+ - G_eff-)``, which the ADC converts; digital shift-and-add gives
``y_n = sum_p a_p sum_s significance_s sum_arrays D``, and ``y = y_n * s_x * w_max``. With ideal
models this is exactly ``x @ W.T``. The backward pass is the same with errors driven into the
columns of the backward effective conductances, sensed on the rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch

from txsim_core.crossbar.config import LayerConfig
from txsim_core.crossbar.models import build_layer_models
from txsim_core.crossbar.quantize import quantize_signed, row_group_scale
from txsim_core.crossbar.rows import DriveRows, PartProduct, VoltageRows
from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC, DAC, ArraySolver, UpdateModel
from txsim_core.interfaces import Mapping as DeviceMapping

SLICES_BY_MATRIX = 16
"""Channels per array up to which a layer sums its weight slices by one matrix product with
``[sig_0 I; sig_1 I; ...]`` (a broadcast multiply and a sum over the slices cost up to twice as
much there: 330 against 150 us per part of a LeNet-5 conv1 forward, 6 channels); from 17
channels on, by the multiply and the sum."""

Direction = Literal["forward", "backward"]
DIRECTIONS: tuple[Direction, Direction] = ("forward", "backward")


class CrossbarArray(torch.nn.Module):
    """The crossbar arrays of one layer: ideal conductances, models, and the three phases.

    Args:
        weight: initial weights, shape ``(out_features, in_features)`` (as ``nn.Linear``).
        config: the layer's configuration.
        seed: seeds the layer's random generator (device variation, write noise, rounding).
        name: the layer's name, used in messages.
    """

    conductance: torch.Tensor
    w_max: torch.Tensor
    update_count: torch.Tensor
    device_model: DeviceMapping
    update_model: UpdateModel
    solver: ArraySolver
    dac: DAC
    adc: ADC
    dac_backward: DAC
    adc_backward: ADC

    def __init__(
        self, weight: torch.Tensor, config: LayerConfig, *, seed: int = 0, name: str = ""
    ) -> None:
        super().__init__()
        self.name = name or "crossbar"
        self.config = config
        settings = config.settings
        models = build_layer_models(config, self.name)
        self.device_model = models.device
        self.update_model = models.update
        self.solver = models.solver
        self.dac = models.dac
        self.adc = models.adc
        self.dac_backward = models.dac_backward
        self.adc_backward = models.adc_backward

        self.out_features, self.in_features = weight.shape
        self.tiles_in = math.ceil(self.in_features / settings.rows)
        self.tiles_out = math.ceil(self.out_features / settings.cols)
        # the stored rows and columns per array: with an exact solver the cells of a single
        # array beyond the layer carry no current and are never written, so they are not stored
        crop = self.solver.is_exact
        self.rows = self.in_features if crop and self.tiles_in == 1 else settings.rows
        self.cols = self.out_features if crop and self.tiles_out == 1 else settings.cols
        self.slices = self.device_model.num_slices(settings.weight_bits)
        # the rows and columns that carry weights (a single array is cropped to its used part)
        self.used_rows = self.rows if self.tiles_in > 1 else self.in_features
        self.used_cols = self.cols if self.tiles_out > 1 else self.out_features
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self._cache: dict[str, torch.Tensor] = {}
        self._significances: dict[tuple[bool, torch.device, torch.dtype], torch.Tensor] = {}

        shape = (self.tiles_in, self.tiles_out, self.slices, 2, self.rows, self.cols)
        self.register_buffer(
            "conductance", torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        )
        self.register_buffer("w_max", torch.ones((), dtype=weight.dtype, device=weight.device))
        self.register_buffer(
            "update_count", torch.zeros((), dtype=torch.long, device=weight.device)
        )
        for direction in DIRECTIONS:  # state of the last circuit solve, for refresh_every > 1
            self.register_buffer(f"solved_{direction}_g", torch.empty(0, device=weight.device))
            self.register_buffer(f"solved_{direction}_eff", torch.empty(0, device=weight.device))
            self.register_buffer(
                f"solved_{direction}_at", torch.zeros((), dtype=torch.long, device=weight.device)
            )
        self.weight = torch.nn.Parameter(weight.detach().clone())
        self.weight._txsim_crossbar = self  # type: ignore[attr-defined]  # CrossbarSGD finds it

        self._check_precisions()
        generator = self.generator()
        self.device_model.setup(self.conductance.shape, generator)
        units = self.tiles_in * self.tiles_out * self.slices
        self.adc.setup(units, self.used_cols, generator)
        self.adc_backward.setup(units, self.used_rows, generator)
        self.program(weight)

    def _check_precisions(self) -> None:
        """Fail at build time when a DAC cannot take its direction's precision (a streaming DAC
        needs a number of bits), instead of at the first forward or backward pass."""
        for direction, setting in zip(DIRECTIONS, ("input_bits", "error_bits"), strict=True):
            try:
                self._dac(direction).num_passes(self._bits(direction))
            except ConfigError as exc:
                raise ConfigError(f"Layer {self.name!r}, `{setting}`: {exc}") from exc

    # ------------------------------------------------------------------ state
    def generator(self) -> torch.Generator:
        """The layer's random generator on the device its state is on."""
        device = self.conductance.device
        if device not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return self._generators[device]

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator().get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator().set_state(state["generator"])
        self._cache.clear()

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # .to(), .cuda(), .double()
        result = super()._apply(fn, *args, **kwargs)
        self._cache.clear()
        return result

    def tile(self, w: torch.Tensor) -> torch.Tensor:
        """``(K, M)`` -> ``(T_r, T_c, rows, cols)``, zero-padded."""
        pad = (
            0,
            self.tiles_out * self.cols - w.shape[1],
            0,
            self.tiles_in * self.rows - w.shape[0],
        )
        padded = torch.nn.functional.pad(w, pad) if any(pad) else w
        return padded.reshape(self.tiles_in, self.rows, self.tiles_out, self.cols).transpose(1, 2)

    def untile(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(T_r, T_c, r, c)`` -> ``(K, M)``, for tiles cropped to their used rows and columns."""
        t_r, t_c, r, c = tiles.shape
        return tiles.transpose(1, 2).reshape(t_r * r, t_c * c)[
            : self.in_features, : self.out_features
        ]

    @torch.no_grad()
    def program(self, weight: torch.Tensor) -> None:
        """Write weights of shape ``(out_features, in_features)`` onto the arrays (ideally)."""
        settings = self.config.settings
        if settings.w_max is not None:
            w_max = settings.w_max
        else:
            largest = float(weight.abs().max())
            w_max = settings.w_max_headroom * largest if largest > 0 else 1.0
        self.w_max.fill_(w_max)
        w_n = self.tile(weight.detach().t().to(self.conductance.dtype) / w_max)
        self.conductance.copy_(self.device_model.encode(w_n, settings.weight_bits))
        self._changed()

    def _changed(self) -> None:
        self._cache.clear()
        self.weight.data.copy_(self.read_weight())

    def _significance(self, analog: bool = False) -> torch.Tensor:
        """Weight per siemens of each slice; ``analog``: of the one-slice analog encoding."""
        g = self.conductance
        key = (analog, g.device, g.dtype)
        if key not in self._significances:
            weight_bits = None if analog else self.config.settings.weight_bits
            sig = self.device_model.significance(weight_bits)
            self._significances[key] = sig.to(device=g.device, dtype=g.dtype)
        return self._significances[key]

    def _normalized_weight(self, g: torch.Tensor, analog: bool = False) -> torch.Tensor:
        """``(K, M)`` weights in [-1, 1] that conductances of the layer's shape stand for
        (``analog``: conductances of the one-slice analog encoding, ``encode(w, None)``)."""
        diff = (
            g[..., 0, : self.used_rows, : self.used_cols]
            - g[..., 1, : self.used_rows, : self.used_cols]
        )
        return self.untile(_weigh_slices(self._significance(analog), diff))

    def read_weight(self) -> torch.Tensor:
        """The weights the ideal conductances stand for, ``(out_features, in_features)``."""
        return (self._ideal_weight() * self.w_max).t()

    def _ideal_weight(self) -> torch.Tensor:
        """The normalized ``(K, M)`` weights of the ideal conductances (cached until they change)."""
        return self._cached("ideal_weight", lambda: self._normalized_weight(self.conductance))

    # ------------------------------------------------------- non-ideal matrices
    def _cached(self, key: str, compute: Any) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def realized(self) -> torch.Tensor:
        """The conductances the devices really have (variation, faults) when read."""
        return self._cached("realized", lambda: self.device_model.realize(self.conductance))

    def effective(self, direction: Direction) -> torch.Tensor:
        """Effective conductances of the direction, refreshed as ``refresh_every`` says."""
        return self._cached(f"effective_{direction}", lambda: self._solve(direction))

    @torch.no_grad()
    def _solve(self, direction: Direction) -> torch.Tensor:
        g = self.realized()
        if self.solver.is_exact:
            return g
        solved_g = getattr(self, f"solved_{direction}_g")
        solved_eff = getattr(self, f"solved_{direction}_eff")
        solved_at = getattr(self, f"solved_{direction}_at")
        fresh = solved_g.shape != g.shape
        if not fresh and int(self.update_count - solved_at) < self.config.settings.refresh_every:
            # interpolated: the stored distortion reapplied; a cell of zero conductance keeps its
            # effective value (sneak paths can give it one)
            return torch.where(solved_g > 0, g * solved_eff / solved_g, solved_eff)
        changed = None if fresh else (g != solved_g).flatten(-2).any(-1)
        if changed is None or bool(changed.all()):
            g_eff = self.solver.effective_conductance(g, direction)
        else:  # solve again only the arrays whose conductances changed
            g_eff = solved_eff.clone()
            if bool(changed.any()):
                subset = self._changed_arrays(g, changed)
                g_eff[changed] = self.solver.effective_conductance(subset, direction)
        setattr(self, f"solved_{direction}_g", g.clone())
        setattr(self, f"solved_{direction}_eff", g_eff)
        solved_at.copy_(self.update_count)
        return g_eff

    def _changed_arrays(self, g: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        """``g[changed]``, as the same tensor for both directions when they changed alike: a
        solver that shares one network solve between the directions (``fcm``) then solves once."""
        last = self._cache.get("changed_mask")
        if last is None or last.shape != changed.shape or not torch.equal(last, changed):
            self._cache["changed_mask"] = changed
            self._cache["changed_arrays"] = g[changed]
        return self._cache["changed_arrays"]

    def differential(self, direction: Direction) -> torch.Tensor:
        """Positive minus negative effective conductances on the used cells: ``(T_r, T_c, S, r, c)``."""

        def compute() -> torch.Tensor:
            g = self.effective(direction)[..., : self.used_rows, : self.used_cols]
            return g[..., 0, :, :] - g[..., 1, :, :]

        return self._cached(f"differential_{self._solved_key(direction)}", compute)

    def _solved_key(self, direction: Direction) -> str:
        """The cache key of a direction's solved matrices: one for both with an exact solver."""
        return "exact" if self.solver.is_exact else direction

    def effective_weight(self, direction: Direction) -> torch.Tensor:
        """The normalized ``(K, M)`` matrix the arrays compute when the ADC is exact."""

        def compute() -> torch.Tensor:
            if self.solver.is_exact and self.realized() is self.conductance:
                return self._ideal_weight()  # the arrays compute the programmed weights
            return self.untile(_weigh_slices(self._significance(), self.differential(direction)))

        return self._cached(f"weight_{self._solved_key(direction)}", compute)

    # -------------------------------------------------------------- conversion
    def _bits(self, direction: Direction) -> int | None:
        settings = self.config.settings
        return settings.input_bits if direction == "forward" else settings.error_bits

    def _dac(self, direction: Direction) -> Any:
        return self.dac if direction == "forward" else self.dac_backward

    def _adc(self, direction: Direction) -> Any:
        return self.adc if direction == "forward" else self.adc_backward

    def skips_conversion(self, direction: Direction) -> bool:
        """Whether the direction's inputs pass the DAC and quantizer unchanged (up to scale)."""
        return self._bits(direction) is None and self._dac(direction).is_exact

    def quantize(
        self, x: torch.Tensor, direction: Direction, rows_per_sample: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale ``(N, K)`` values per sample and quantize them: returns ``(x_n, scale)``."""
        if self.skips_conversion(direction):
            return x, torch.ones((x.shape[0], 1), dtype=x.dtype, device=x.device)
        scale = row_group_scale(x, rows_per_sample)
        return quantize_signed(x / scale, self._bits(direction)), scale

    def convert_collapsed(self, x_n: torch.Tensor, direction: Direction) -> torch.Tensor:
        """DAC passes recombined in the analog domain: ``sum_p a_p V_p`` (same shape as ``x_n``)."""
        if self.skips_conversion(direction):
            return x_n
        volts, weights = self._dac(direction)(x_n, self._bits(direction))
        return torch.tensordot(weights.to(volts.dtype), volts, dims=1)

    def uses_exact_adc(self, direction: Direction) -> bool:
        """Whether the direction's ADC is exact, so arrays, slices and passes can be summed first."""
        return bool(self._adc(direction).is_exact)

    def matmul(self, x_n: torch.Tensor, direction: Direction) -> torch.Tensor:
        """Normalized ``(N, K) -> (N, M)`` forward, or ``(N, M) -> (N, K)`` backward."""
        if self.uses_exact_adc(direction):
            w = self.effective_weight(direction)
            x_eff = self.convert_collapsed(x_n, direction)
            return x_eff @ w if direction == "forward" else x_eff @ w.t()
        return self._analog_matmul(x_n, direction)

    def _analog_matmul(self, x_n: torch.Tensor, direction: Direction) -> torch.Tensor:
        """Every array, slice and pass evaluated, converted and recombined (see :meth:`sense`)."""
        volts, weights = self.drive(x_n, direction)
        return self.sense(VoltageRows(volts), weights, direction)

    def drive(self, x_n: torch.Tensor, direction: Direction) -> tuple[torch.Tensor, torch.Tensor]:
        """The DAC of the direction: normalized inputs ``(...)`` -> voltages ``(P, ...)`` (V)
        and pass weights ``(P,)`` (1/V). Elementwise (see :class:`~txsim_core.interfaces.DAC`).

        Passes that drive no row of the minibatch are left out where the direction's ADC
        converts 0 A to 0 without a trace (:meth:`~txsim_core.interfaces.ADC.
        zero_current_is_silent`): their currents are 0 A through any array, so they would add
        exactly 0. On a ReLU network that is the negative phase of every non-negative input of
        a sign-magnitude DAC, half of the forward passes. At least one pass always remains, so
        that the ADC sees every minibatch.
        """
        volts, weights = self._dac(direction)(x_n, self._bits(direction))
        if volts.shape[0] < 2 or not self._adc(direction).zero_current_is_silent():
            return volts, weights
        flat = volts.reshape(volts.shape[0], -1)
        if flat.shape[1] == 0:
            driven = torch.zeros(flat.shape[0], dtype=torch.bool, device=flat.device)
        else:  # any(v != 0) per pass, NaN included; 10x faster than `any` on the CPU
            driven = (flat.amax(dim=1) != 0) | (flat.amin(dim=1) != 0)
        if not bool(driven.any()):
            driven[0] = True
        elif bool(driven.all()):
            return volts, weights
        kept = driven.nonzero().squeeze(1)
        first, last = int(kept[0]), int(kept[-1]) + 1
        if last - first == kept.numel():  # one run of passes (a phase): a view, no copy
            return volts[first:last], weights[first:last]
        return volts.index_select(0, kept), weights.index_select(0, kept.to(weights.device))

    def sense(self, rows: DriveRows, weights: torch.Tensor, direction: Direction) -> torch.Tensor:
        """The voltages of :meth:`drive`, as rows, through every array and slice, converted by
        the ADC and recombined: the normalized ``(rows.count, out)`` result of :meth:`matmul`.

        On the CPU the rows go part by part (:mod:`txsim_core.crossbar.rows`): each part's
        currents are computed, converted and recombined while they are in cache, through
        :meth:`~txsim_core.interfaces.ADC.convert_parts` (a converter that calibrates from the
        data may have the parts computed twice); an ADC that cannot convert in parts gets all
        currents at once.
        """
        diff = self.differential(direction)  # (T_r, T_c, S, r, c)
        t_r, t_c, s, r, c = diff.shape
        if direction == "forward":
            matrix = diff.permute(0, 3, 1, 2, 4).reshape(t_r, r, t_c * s * c)
            inner, out_tiles, out_width = t_r, t_c, c
        else:
            matrix = diff.permute(1, 4, 0, 2, 3).reshape(t_c, c, t_r * s * r)
            inner, out_tiles, out_width = t_c, t_r, r
        matrix = matrix.to(rows.dtype)
        y = torch.empty(rows.count, out_tiles * out_width, dtype=rows.dtype, device=rows.device)
        significance = self._significance().to(rows.dtype)
        # slices of few channels are summed by one matrix product with [sig_0 I; sig_1 I; ...]
        by_matrix = s > 1 and out_width <= SLICES_BY_MATRIX
        slice_matrix = (
            torch.kron(
                significance.view(s, 1),
                torch.eye(out_width, dtype=rows.dtype, device=significance.device),
            )
            if by_matrix
            else None
        )
        weights = weights.to(rows.dtype)

        def recombine(digital: torch.Tensor, start: int, stop: int) -> None:
            """Converted currents of rows ``start:stop`` into ``y``. Units are ordered (T_r,
            T_c, S) forward, (T_c, T_r, S) backward: passes are summed with their weights by
            one matrix-vector product, then the arrays along the input (a sum over a middle
            dimension), then slices with their significance."""
            n = stop - start
            if rows.passes == 1:
                summed = digital.reshape(-1).mul_(weights[0])
            else:
                summed = weights @ digital.reshape(rows.passes, -1)
            if inner > 1:
                summed = summed.view(n, inner, -1).sum(dim=1)
            slices = summed.view(n * out_tiles, s * out_width)
            part = y[start:stop].view(n * out_tiles, out_width)
            if slice_matrix is not None:
                torch.mm(slices, slice_matrix, out=part)
            elif s == 1:
                torch.mul(slices, significance, out=part)
            else:
                weighed = slices.view(-1, s, out_width).mul_(significance.view(1, s, 1))
                torch.sum(weighed, dim=1, out=part)

        bounds = rows.parts(rows.passes * matrix.shape[0] * matrix.shape[2])
        adc = self._adc(direction)
        if len(bounds) == 1 or not adc.convert_parts(
            PartProduct(rows, matrix, out_width, bounds, recombine)
        ):
            whole = PartProduct(rows, matrix, out_width, [(0, rows.count)], recombine)
            for current in whole:
                whole.emit(adc.convert_in_place(current))
        limit = self.out_features if direction == "forward" else self.in_features
        return y[:, :limit]

    # ------------------------------------------------------------------ update
    @torch.no_grad()
    def apply_update(self, delta_weight: torch.Tensor) -> None:
        """Change the weights by ``delta_weight`` (shape of ``weight``, learning rate applied).

        Scale_Layer-k of the paper: a weight change ``dW`` asks for the conductance change
        ``(g_max - g_min) / w_max * dW``; ``dw_max`` and ``update_bits`` limit what one update can
        request (see :meth:`_update_request`). Only weights with a non-zero change are
        written. An unsliced weight (one device per side)
        is rounded to the weight grid and re-encoded, and the update model writes the requested
        change ``target - G`` on its devices. A bit-sliced weight is updated as the
        ``sliced_update`` setting says (see :meth:`_update_sliced`). What the update model really
        writes (non-linearity, noise, bounds) becomes the new state.
        """
        settings = self.config.settings
        delta_weight = self._update_request(delta_weight)
        requested = self.tile((delta_weight != 0).t().to(self.conductance.dtype))[:, :, None, None]
        w_n = self._ideal_weight() + delta_weight.t() / self.w_max
        if self.slices > 1 and settings.sliced_update == "weight":
            self._update_sliced(w_n, requested)
        else:
            target = self.device_model.encode(self.tile(self._round(w_n)), settings.weight_bits)
            dg = (target - self.conductance) * requested
            self.conductance.copy_(self.update_model.step(self.conductance, dg, self.generator()))
        self.update_count += 1
        self._changed()

    def _update_request(self, delta_weight: torch.Tensor) -> torch.Tensor:
        """The weight change the update circuit can request: clipped to ``dw_max`` and rounded
        (stochastically) to ``update_bits`` over its full scale, when those are set."""
        settings = self.config.settings
        if settings.dw_max is None and settings.update_bits is None:
            return delta_weight
        scale = settings.dw_max if settings.dw_max is not None else delta_weight.abs().max()
        if float(scale) == 0.0:
            return delta_weight
        unit = (delta_weight / scale).clamp(-1.0, 1.0)
        unit = quantize_signed(
            unit, settings.update_bits, stochastic=True, generator=self.generator()
        )
        return unit * scale

    def _round(self, w_n: torch.Tensor) -> torch.Tensor:
        settings = self.config.settings
        return quantize_signed(
            w_n,
            settings.weight_bits,
            stochastic=settings.update_rounding == "stochastic",
            generator=self.generator(),
        )

    def _update_sliced(self, w_n: torch.Tensor, requested: torch.Tensor) -> None:
        """The paper's update of a bit-sliced weight: the update model acts on one analog pair
        per weight that holds the present weight, asked for the unrounded new weight; the weight
        it reaches is rounded to ``weight_bits`` and written exactly into the slices."""
        pair = self.device_model.encode(self.tile(self._ideal_weight()), None)
        target = self.device_model.encode(self.tile(w_n), None)
        written = self.update_model.step(pair, (target - pair) * requested, self.generator())
        reached = self._round(self._normalized_weight(written, analog=True))
        self.conductance.copy_(
            self.device_model.encode(self.tile(reached), self.config.settings.weight_bits)
        )

    def model_name(self, slot: str, direction: Direction = "forward") -> str:
        """The registered name of a slot's model (its class name if it was given as an object)."""
        value = self.config.slot(slot, direction)
        if isinstance(value, str):
            return value
        if isinstance(value, Mapping) and "name" in value:
            return str(value["name"])
        return type(value).__name__ if not isinstance(value, type) else value.__name__

    def describe(self) -> dict[str, Any]:
        """What the layer is made of, for ``repr`` and :func:`txsim_core.summary`."""
        settings = self.config.settings
        passes = (
            self.dac.num_passes(settings.input_bits),
            self.dac_backward.num_passes(settings.error_bits),
        )
        bits = (settings.weight_bits, settings.input_bits, settings.error_bits)
        return {
            "arrays": f"{self.tiles_in}x{self.tiles_out} of {settings.rows}x{settings.cols}",
            "slices": self.slices,
            "passes": "/".join(str(p) for p in passes),
            "bits": "/".join(str(b or "fp") for b in bits),
            **{
                slot: self.model_name(slot) for slot in ("device", "dac", "adc", "solver", "update")
            },
            "backward": "/".join(self.model_name(s, "backward") for s in ("dac", "adc")),
        }


def _weigh_slices(significance: torch.Tensor, diff: torch.Tensor) -> torch.Tensor:
    """``sum_s significance[s] * diff[:, :, s]``: ``(T_r, T_c, S, r, c)`` -> ``(T_r, T_c, r, c)``."""
    if diff.shape[2] == 1:
        return diff[:, :, 0] * significance[0]
    return torch.einsum("s,tusrc->turc", significance, diff)
