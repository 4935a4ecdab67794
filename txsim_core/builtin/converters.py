"""Built-in non-ideal converters: the multi-bit DAC ``multibit`` and the uniform ADC ``uniform``.

Conventions shared with the layer (see :class:`txsim_core.interfaces.DAC`): a signed quantity of
``b`` bits, sign included, lies on the grid ``k / K`` with integer ``|k| <= K = 2**(b-1) - 1``
(sign-magnitude: the grid is symmetric and has an exact zero; ``2**b - 1`` levels).

``uniform`` ADC (``bits`` = N, full scale FS in A, ``L = 2**(N-1) - 1``, ``LSB = FS / L``)::

    x    = I / LSB + INL(I / FS)                    INL polynomial in LSB, optional
    code = sign(x) * min(floor(|x| + 1/2), L)       round half away from zero, saturate at +-L
    out  = code * LSB                               amperes

The full scale is fixed or calibrated from the data: :mod:`txsim_core.calibration`.

``multibit`` DAC (``bits`` = b or None, ``v_max`` in V), codes and ideal levels:

* ``polarity="bipolar"``: one pass; codes ``k`` in ``[-K, K]``, ``K = 2**(b-1) - 1``,
  ``V(k) = v_max * k / K`` (sign included in b, like the layer's inputs); pass weight ``1/v_max``.
* ``polarity="unipolar"``: voltages in ``[0, v_max]``, so a signed input takes two passes, its
  positive part first and its negative part second (the other rows at code 0); magnitude codes
  ``k`` in ``[0, K]``, ``K = 2**b - 1`` (b magnitude bits: a signed input of ``b + 1`` bits is
  exact); ``V(k) = v_max * k / K``; pass weights ``(+1/v_max, -1/v_max)``.

``bits=None``: the DAC resolves exactly the grid of the inputs it is given (``b`` = input bits,
``b - 1`` for unipolar); with full-precision inputs (None) it is continuous. Inputs finer than the
DAC are rounded to its codes (half away from zero): a DAC limited in precision.

Non-linear transfer curve (needs ``bits``), ``LSB_V = v_max / K``:

* ``inl=(c0, c1, ...)``: ``V(k) = v_max * k / K + LSB_V * sum_i c_i * u**i`` with ``u = k / K``
  (in [-1, 1] bipolar, [0, 1] unipolar); the ``c_i`` are in LSB.
* ``table="curve.csv"``: a measured (e.g. SPICE-calibrated) curve. The file is comma-separated
  text: lines starting with ``#`` and blank lines are ignored; the first other line is the header,
  exactly two columns, ``code`` and either ``voltage`` (the output in volts) or ``inl_lsb``
  (``V(k) = v_max * k / K + inl_lsb * LSB_V``); then one row per code, integer codes strictly
  increasing, covering every code of the DAC exactly once (``-K..K`` bipolar, ``0..K`` unipolar).

Because the pass weights are those of the ideal converter, ``sum_p w_p V_p`` equals the quantized
input plus the INL: the layer sees the DAC's error exactly where the hardware makes it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import attrs
import torch

from txsim_core.calibration import (
    FullScale,
    FullScaleParams,
    convert_sign_magnitude_,
    round_half_away,
    signed_codes_,
    to_lsb,
)
from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC, DAC, CurrentParts
from txsim_core.params import Check, parameter

__all__ = [
    "CoefficientsCheck",
    "MultiBitDAC",
    "MultiBitDACParams",
    "UniformADC",
    "UniformADCParams",
    "check_bits",
    "coefficients_parameter",
    "load_dac_table",
    "polyval",
]


@attrs.frozen
class CoefficientsCheck(Check):
    """Accepts a sequence of finite numbers (stored as a tuple of floats)."""

    kind: type = tuple

    def describe(self) -> str:
        return "a list of numbers"

    def type_name(self) -> str:
        return "list[float]"

    def convert(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return tuple(float(v) for v in value)
        return value

    def is_valid(self, value: Any) -> bool:
        return isinstance(value, tuple) and all(
            isinstance(v, float) and math.isfinite(v) for v in value
        )


def coefficients_parameter(*, help: str, unit: str = "") -> Any:
    """Declare a parameter that holds polynomial coefficients ``(c0, c1, ...)``; default ``()``."""
    check = CoefficientsCheck()
    return attrs.field(
        default=(),
        converter=check.convert,
        validator=check,
        metadata={"help": help, "unit": unit, "check": check},
    )


def polyval(coefficients: tuple[float, ...], u: torch.Tensor) -> torch.Tensor:
    """``sum_i coefficients[i] * u**i`` by Horner's rule (0 for no coefficients)."""
    result = torch.zeros_like(u)
    for c in reversed(coefficients):
        result = result * u + c
    return result


def check_bits(bits: Any, *, low: int, what: str) -> int:
    """Validate a precision passed at run time (not a parameter); ConfigError if unusable.

    Args:
        bits: the value to check.
        low: the smallest allowed precision.
        what: what the precision belongs to, for the message.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= 62:
        raise ConfigError(
            f"Expected `bits` of {what} to be an integer in [{low}, 62], but got {bits!r}."
        )
    return bits


# ------------------------------------------------------------------------------------------------
# uniform ADC


@attrs.frozen(kw_only=True)
class UniformADCParams(FullScaleParams):
    """Parameters of the uniform ADC (the full-scale parameters come first)."""

    bits: int = parameter(
        8,
        kind=int,
        low=2,
        high=24,
        help="Resolution, sign included: codes -(2**(bits-1)-1) .. 2**(bits-1)-1 (a sign and "
        "bits-1 magnitude bits, so at least 2).",
    )
    inl: tuple[float, ...] = coefficients_parameter(
        unit="LSB",
        help="Integral non-linearity: coefficients (c0, c1, ...) of INL(u) = sum_i c_i * u**i in "
        "LSB, u = I / full_scale, added to I / LSB before rounding. Empty: linear.",
    )


class UniformADC(ADC):
    """N-bit uniform sign-magnitude quantizer with saturation and an optional INL polynomial.

    The output of a current ``I`` is ``s * min(floor(|x| + 1/2), L) * LSB``, ``x = I / LSB``
    plus the INL, ``L = 2**(bits-1) - 1``, ``s`` the sign of ``x`` (its sign bit, so ``-0.0``
    gives ``-0.0``); NaN stays NaN (see :func:`~txsim_core.calibration.signed_codes_`).
    """

    def __init__(self, params: UniformADCParams) -> None:
        super().__init__(params)
        self.scale = FullScale(params)

    @property
    def levels(self) -> int:
        """The largest magnitude code, ``2**(bits-1) - 1``."""
        return int(2 ** (self.params.bits - 1) - 1)

    @property
    def full_scale(self) -> torch.Tensor:
        """The current full scale in amperes, shape ``(1,)`` or ``(units,)``."""
        return self.scale.value

    def setup(self, units: int, channels: int, generator: torch.Generator) -> None:
        self.scale.setup(units)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self._convert(current, in_place=False)

    def convert_in_place(self, current: torch.Tensor) -> torch.Tensor:
        return self._convert(current, in_place=True)

    def convert_parts(self, parts: CurrentParts) -> bool:
        return self.scale.convert_parts(
            parts, lambda current: self._convert(current, in_place=True, calibrate=False)
        )

    def zero_current_is_silent(self) -> bool:
        """True unless the INL moves 0 A off code 0 (``|c0| >= 1/2`` LSB) or a percentile
        calibrates."""
        inl = self.params.inl
        return (not inl or abs(inl[0]) < 0.5) and not self.scale.zeros_matter()

    def _convert(
        self, current: torch.Tensor, in_place: bool, calibrate: bool = True
    ) -> torch.Tensor:
        fs = self.scale(current) if calibrate else self.scale.value_for(current)
        if not self.params.inl:
            return convert_sign_magnitude_(
                current if in_place else current.clone(), fs, self.levels
            )
        x, lsb = to_lsb(current, fs, self.levels, in_place=in_place)
        x = x + polyval(self.params.inl, x / self.levels)
        return signed_codes_(x, self.levels).mul_(lsb)


# ------------------------------------------------------------------------------------------------
# multi-bit DAC


def _dac_codes(bits: int, polarity: str) -> tuple[int, int]:
    """The lowest code and ``K`` (the largest code) of a DAC of ``bits`` bits."""
    if polarity == "bipolar":
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2**bits - 1


def load_dac_table(path: str, bits: int, polarity: str) -> tuple[str, torch.Tensor]:
    """Read a DAC transfer-curve CSV file (format: module docstring) and check it.

    Args:
        path: the file.
        bits: the DAC's resolution; the table must hold each of its codes once.
        polarity: ``"bipolar"`` or ``"unipolar"``.

    Returns:
        The value column's name (``"voltage"`` or ``"inl_lsb"``) and its values in code order,
        float64.

    Raises:
        ValueError: "Expected ..., but got ..." naming `table` and the file (wrapped in a
            :class:`ConfigError` by txsim).
    """
    where = f"`table` file {path!r}"
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as exc:
        raise ValueError(
            f"Expected `table` to name a readable CSV file, but got {path!r} "
            f"({exc.strerror or exc})."
        ) from None
    rows = [
        (number, [cell.strip() for cell in row])
        for number, row in enumerate(csv.reader(text.splitlines()), start=1)
        if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
    ]
    if not rows:
        raise ValueError(
            f"Expected a header line and one row per code in {where}, but it is empty."
        )
    header_line, header = rows[0]
    names = [h.lower() for h in header]
    if len(names) != 2 or names[0] != "code" or names[1] not in ("voltage", "inl_lsb"):
        raise ValueError(
            f"Expected the header of {where} to be 'code,voltage' or 'code,inl_lsb', but got "
            f"{','.join(header)!r} (line {header_line})."
        )
    codes: list[int] = []
    values: list[float] = []
    for number, row in rows[1:]:
        if len(row) != 2:
            raise ValueError(
                f"Expected 2 columns on every row of {where}, but got {len(row)} on line {number}."
            )
        try:
            code_value, value = float(row[0]), float(row[1])
        except ValueError:
            raise ValueError(
                f"Expected numbers in {where}, but got {','.join(row)!r} on line {number}."
            ) from None
        if not (math.isfinite(code_value) and code_value == int(code_value)):
            raise ValueError(
                f"Expected integer codes in {where}, but got {row[0]!r} on line {number}."
            )
        if not math.isfinite(value):
            raise ValueError(
                f"Expected finite {names[1]} values in {where}, but got {row[1]!r} on line "
                f"{number}."
            )
        code = int(code_value)
        if codes and code <= codes[-1]:
            raise ValueError(
                f"Expected strictly increasing codes in {where}, but got {code} after "
                f"{codes[-1]} on line {number}."
            )
        codes.append(code)
        values.append(value)
    low, top = _dac_codes(bits, polarity)
    if codes != list(range(low, top + 1)):
        got = f"{len(codes)} codes from {codes[0]} to {codes[-1]}" if codes else "no codes"
        raise ValueError(
            f"Expected {where} to list every code from {low} to {top} of a {bits}-bit "
            f"{polarity} DAC once, but got {got}."
        )
    return names[1], torch.tensor(values, dtype=torch.float64)


@attrs.frozen(kw_only=True)
class MultiBitDACParams:
    """Parameters of the multi-bit DAC."""

    v_max: float = parameter(
        1.0,
        unit="V",
        low=0.0,
        low_open=True,
        high=10.0,
        help="Voltage of the largest code (full-scale input |x| = 1). Default: the paper's "
        "0-1 V input range.",
    )
    polarity: str = parameter(
        "unipolar",
        kind=str,
        choices=("unipolar", "bipolar"),
        help="'unipolar': voltages in [0, v_max], signed inputs in two passes (positive part, "
        "negative part), as the paper's 0-1 V inputs; 'bipolar': voltages in [-v_max, v_max], "
        "one pass.",
    )
    bits: int | None = parameter(
        None,
        kind=int,
        low=1,
        high=24,
        optional=True,
        help="Resolution: bipolar, sign included (2**bits - 1 levels, so at least 2); unipolar, "
        "magnitude bits (2**bits levels). Finer inputs are rounded to the DAC's codes. None: the "
        "resolution of the inputs (continuous for full-precision inputs).",
    )
    inl: tuple[float, ...] = coefficients_parameter(
        unit="LSB",
        help="Integral non-linearity: coefficients (c0, c1, ...) of INL(u) = sum_i c_i * u**i in "
        "LSB of v_max, u = code / largest code. Needs `bits`. Empty: linear.",
    )
    table: str | None = parameter(
        None,
        kind=str,
        optional=True,
        path=True,
        help="CSV file of the measured transfer curve, header 'code,voltage' (volts) or "
        "'code,inl_lsb' (LSB), one row per code in increasing order. Needs `bits`; excludes `inl`. "
        "In an experiment file, a relative path is taken from the file's folder.",
    )

    def __attrs_post_init__(self) -> None:
        if self.polarity == "bipolar" and self.bits == 1:
            raise ValueError(
                "Expected `bits` >= 2 for a bipolar DAC (a sign and at least one magnitude bit), "
                "but got 1."
            )
        if (self.inl or self.table is not None) and self.bits is None:
            raise ValueError(
                "Expected `bits` to be set when `inl` or `table` gives the transfer curve (INL is "
                "in LSB of a DAC of fixed resolution), but got None."
            )
        if self.inl and self.table is not None:
            raise ValueError(
                "Expected either `inl` or `table`, not both, but got "
                f"inl={self.inl!r}, table={self.table!r}."
            )
        if self.table is not None and self.bits is not None:
            load_dac_table(self.table, self.bits, self.polarity)


class MultiBitDAC(DAC):
    """Multi-bit DAC, unipolar (two passes) or bipolar (one pass), with an optional INL curve.

    Attributes:
        levels: buffer, the output voltage of every code from the lowest to the highest, in volts,
            for a DAC with a transfer curve (``inl`` or ``table``); empty for a linear DAC, whose
            voltage is ``code * v_max / K``.
    """

    levels: torch.Tensor

    def __init__(self, params: MultiBitDACParams) -> None:
        super().__init__(params)
        levels = torch.zeros(0, dtype=torch.float64)
        if params.bits is not None and (params.table is not None or params.inl):
            low, top = _dac_codes(params.bits, params.polarity)
            codes = torch.arange(low, top + 1, dtype=torch.float64)
            lsb = params.v_max / top
            if params.table is not None:
                column, values = load_dac_table(params.table, params.bits, params.polarity)
                levels = values if column == "voltage" else codes * lsb + values * lsb
            else:
                levels = codes * lsb + lsb * polyval(params.inl, codes / top)
        self.register_buffer("levels", levels)

    def num_passes(self, bits: int | None) -> int:
        return 2 if self.params.polarity == "unipolar" else 1

    def _resolution(self, bits: int | None) -> int | None:
        """``K``, the largest code the inputs are rounded to, or None for continuous voltages."""
        if self.params.bits is not None:
            return _dac_codes(self.params.bits, self.params.polarity)[1]
        if bits is None:
            return None
        bits = check_bits(bits, low=2, what="the inputs of the multibit DAC")
        return 2 ** (bits - 1) - 1

    def forward(self, x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        v_max = self.params.v_max
        top = self._resolution(bits)
        x = x.clamp(-1.0, 1.0)
        if top is None:  # continuous: exact
            if self.params.polarity == "bipolar":
                volts = (x * v_max).unsqueeze(0)
            else:
                volts = torch.stack((x.clamp(min=0.0), (-x).clamp(min=0.0))) * v_max
        else:
            work = torch.float64 if top >= 2**24 else x.dtype
            code = round_half_away(x.to(work) * top)
            if self.params.polarity == "unipolar":
                code = torch.stack((code.clamp(min=0), (-code).clamp(min=0)))
            else:
                code = code.unsqueeze(0)
            if self.levels.numel():
                low = _dac_codes(self.params.bits, self.params.polarity)[0]
                index = (code - low).long()
                volts = self.levels.to(device=x.device, dtype=x.dtype)[index]
            else:
                volts = code.to(x.dtype) * (v_max / top)
        sign = [1.0] if self.params.polarity == "bipolar" else [1.0, -1.0]
        weights = torch.tensor(sign, dtype=x.dtype, device=x.device) / v_max
        return volts, weights
