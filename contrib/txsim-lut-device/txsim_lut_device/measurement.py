"""Measured conductance-versus-pulse curves: reading the CSV and estimating the device from it.

The file format (one row per reading; see the README for how a lab measurement becomes it)::

    cycle,direction,pulse,conductance
    1,potentiation,0,1.10e-06
    1,potentiation,1,1.52e-06
    ...
    1,depression,0,1.02e-05
    ...

``cycle`` labels a repeated measurement, ``direction`` is ``potentiation`` or ``depression``,
``pulse`` is the number of identical pulses applied in that sweep before the reading (integers,
increasing within a sweep), ``conductance`` is the reading in siemens. Blank lines and lines that
start with ``#`` are ignored; further columns are allowed and ignored.

From the file, per direction (``s = +1`` for potentiation, ``-1`` for depression):

* the **mean curve** ``C(p)``: the mean over cycles of the conductance after ``p`` pulses, made
  monotone (``s * C`` non-decreasing) by the pool-adjacent-violators least-squares fit, and read
  between pulses by linear interpolation, clamped at the first and last pulse;
* the **pulse coordinate** ``p(G)``: the inverse of ``C``;
* the **per-pulse noise** ``sigma_step``: the pooled spread between cycles of the steps at the
  same pulse number (see :func:`estimate_sigma_step`).

The device's range ``[g_min, g_max]`` is the range both mean curves cover, so that every state in
it can be moved in both directions.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from txsim_core.errors import ConfigError

COLUMNS = ("cycle", "direction", "pulse", "conductance")
"""The columns every data file must have (others are ignored)."""

DIRECTIONS = ("potentiation", "depression")
"""The allowed values of the ``direction`` column: potentiation raises the conductance."""

SIGNS = {"potentiation": 1.0, "depression": -1.0}
"""The sign of the conductance change of each direction."""


def example_path() -> Path:
    """The bundled example file: synthetic, an illustration of the format, not a measurement."""
    return Path(__file__).resolve().parent / "data" / "example_device.csv"


@dataclass(frozen=True, eq=False)
class Curve:
    """The sweeps of one direction and what is estimated from them.

    Attributes:
        direction: ``"potentiation"`` or ``"depression"``.
        pulses: pulse numbers of the sweeps, shape ``(K,)``, strictly increasing.
        cycles: measured conductances in siemens, shape ``(C, K)``, one row per cycle.
        cycle_labels: the ``cycle`` value of each row of :attr:`cycles`.
        raw_mean: mean over cycles at each pulse, shape ``(K,)``, in siemens.
        mean: :attr:`raw_mean` made monotone in the sweep's direction (the curve the model uses).
        pooled: how many points of :attr:`raw_mean` the monotone fit changed.
        sigma_step: estimated standard deviation of the change of one pulse, in siemens (0 when
            there is only one cycle: the noise cannot be estimated then).
    """

    direction: str
    pulses: np.ndarray
    cycles: np.ndarray
    cycle_labels: tuple[str, ...]
    raw_mean: np.ndarray
    mean: np.ndarray
    pooled: int
    sigma_step: float

    @property
    def sign(self) -> float:
        """+1 for potentiation, -1 for depression."""
        return SIGNS[self.direction]

    def position(self, g: np.ndarray | float) -> np.ndarray:
        """The pulse coordinate ``p(G)`` of conductances (inverse of :meth:`conductance`)."""
        return np.interp(self.sign * np.asarray(g, dtype=float), self.sign * self.mean, self.pulses)

    def conductance(self, p: np.ndarray | float) -> np.ndarray:
        """The mean curve ``C(p)`` at pulse coordinates ``p``, clamped at the ends, in siemens."""
        return np.interp(np.asarray(p, dtype=float), self.pulses, self.mean)


@dataclass(frozen=True, eq=False)
class DeviceData:
    """A device as its measured curves describe it.

    Attributes:
        path: the file the data was read from.
        potentiation: the potentiation curve.
        depression: the depression curve.
        g_min: lowest conductance both mean curves reach, in siemens.
        g_max: highest conductance both mean curves reach, in siemens.
    """

    path: Path
    potentiation: Curve
    depression: Curve
    g_min: float
    g_max: float

    def curve(self, direction: str) -> Curve:
        """The curve of ``direction`` (``"potentiation"`` or ``"depression"``)."""
        return self.potentiation if direction == "potentiation" else self.depression

    def summary(self) -> str:
        """A few lines that describe what was read and estimated, for a human to check."""
        span = self.g_max - self.g_min
        lines = [
            f"{self.path}",
            f"  range used: g_min = {self.g_min:.4g} S ({1 / self.g_min:.4g} Ohm), "
            f"g_max = {self.g_max:.4g} S ({1 / self.g_max:.4g} Ohm), "
            f"on/off ratio {self.g_max / self.g_min:.3g}",
        ]
        for curve in (self.potentiation, self.depression):
            steps = np.diff(curve.mean)
            first, last = curve.pulses[0], curve.pulses[-1]
            lines.append(
                f"  {curve.direction}: {len(curve.cycle_labels)} cycle(s), pulses {first:g} to "
                f"{last:g}, mean curve {curve.mean[0]:.4g} S -> {curve.mean[-1]:.4g} S; "
                f"mean step per pulse from {steps[0] / np.diff(curve.pulses)[0]:.3g} S to "
                f"{steps[-1] / np.diff(curve.pulses)[-1]:.3g} S; sigma_step = "
                f"{curve.sigma_step:.3g} S ({100 * curve.sigma_step / span:.3g} % of the range); "
                f"{curve.pooled} point(s) smoothed to make the curve monotone"
            )
        return "\n".join(lines)


def load_device_data(path: str | os.PathLike[str] | None) -> DeviceData:
    """Read and check a device data file, or the bundled example for ``None``.

    Files are cached by path, modification time and size: layers that name the same file share
    one reading.

    Raises:
        ConfigError: naming the file (and the line, where one is at fault) and the problem.
    """
    resolved = example_path() if path is None else Path(path).expanduser()
    try:
        stat = resolved.stat()
    except OSError as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise ConfigError(
            "Expected `data` to be the path of a CSV file of device measurements (columns "
            f"{', '.join(COLUMNS)}), but got {str(path)!r}: {reason} "
            f"(looked for {resolved.absolute()})."
        ) from None
    if not resolved.is_file():
        raise ConfigError(
            f"Expected `data` to be the path of a CSV file, but got {str(path)!r}, which is not "
            "a file."
        )
    return _load_cached(str(resolved.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> DeviceData:
    return parse_device_data(Path(path))


def parse_device_data(path: Path) -> DeviceData:
    """Read a device data file (no caching); see :func:`load_device_data`."""
    sweeps = _read_rows(path)
    curves = {direction: _curve(path, direction, sweeps) for direction in DIRECTIONS}
    pot, dep = curves["potentiation"], curves["depression"]
    g_min = max(float(pot.mean.min()), float(dep.mean.min()))
    g_max = min(float(pot.mean.max()), float(dep.mean.max()))
    if not g_max > g_min:
        raise ConfigError(
            "Expected the mean potentiation and depression curves to cover a common range of "
            f"conductance in {path}, but got potentiation from {pot.mean.min():.4g} S to "
            f"{pot.mean.max():.4g} S and depression from {dep.mean.min():.4g} S to "
            f"{dep.mean.max():.4g} S."
        )
    curves = {
        direction: _with_sigma(curve, estimate_sigma_step(curve))
        for direction, curve in curves.items()
    }
    return DeviceData(
        path=path,
        potentiation=curves["potentiation"],
        depression=curves["depression"],
        g_min=g_min,
        g_max=g_max,
    )


_Row = tuple[float, float, int]  # pulse, conductance, line number


def _read_rows(path: Path) -> dict[tuple[str, str], list[_Row]]:
    """The readings of every sweep, keyed by (direction, cycle), in file order, checked."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Expected {path} to be a UTF-8 text (CSV) file, but got undecodable bytes at "
            f"position {exc.start}."
        ) from None
    header: list[str] | None = None
    index: dict[str, int] = {}
    sweeps: dict[tuple[str, str], list[_Row]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        where = f"{path}, line {number}"
        if header is None:
            header = [f.lower() for f in fields]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                hint = ""
                if len(fields) == 1 and (";" in line or "\t" in line):
                    hint = " The header seems to use ';' or tabs: separate columns with commas."
                raise ConfigError(
                    f"Expected a header with the columns {', '.join(COLUMNS)} in {where}, but "
                    f"got {line.strip()!r} (missing: {', '.join(missing)}).{hint}"
                )
            index = {c: header.index(c) for c in COLUMNS}
            continue
        if len(fields) != len(header):
            raise ConfigError(
                f"Expected {len(header)} comma-separated fields as in the header, but got "
                f"{len(fields)} in {where}: {line.strip()!r}."
            )
        cycle = fields[index["cycle"]]
        if not cycle:
            raise ConfigError(f"Expected a cycle label in {where}, but got an empty field.")
        direction = fields[index["direction"]].lower()
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"Expected the direction to be 'potentiation' or 'depression' in {where}, but got "
                f"{fields[index['direction']]!r}."
            )
        pulse = _number(fields[index["pulse"]], "pulse", where)
        if not pulse.is_integer():
            raise ConfigError(
                f"Expected the pulse to be a whole number of pulses in {where}, but got {pulse!r}."
            )
        g = _number(fields[index["conductance"]], "conductance", where)
        if not 0.0 < g <= 1.0:
            raise ConfigError(
                f"Expected the conductance in siemens, > 0 and <= 1, in {where}, but got {g!r} "
                "(convert uS by multiplying by 1e-6, and a resistance R by taking 1/R)."
            )
        rows = sweeps.setdefault((direction, cycle), [])
        if rows and pulse <= rows[-1][0]:
            raise ConfigError(
                f"Expected the pulse numbers of each sweep to increase from row to row, but got "
                f"pulse {pulse:g} in {where} after pulse {rows[-1][0]:g} (line {rows[-1][2]}) in "
                f"the {direction} sweep of cycle {cycle!r}."
            )
        rows.append((pulse, g, number))
    if header is None:
        raise ConfigError(
            f"Expected a header line ({','.join(COLUMNS)}) and data rows in {path}, but the file "
            "is empty."
        )
    return sweeps


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"Expected a finite number as {column} in {where}, but got {text!r}.")
    return value


def _curve(path: Path, direction: str, sweeps: dict[tuple[str, str], list[_Row]]) -> Curve:
    """The mean curve of one direction, checked and made monotone (noise not yet estimated)."""
    cycles = {c: rows for (d, c), rows in sweeps.items() if d == direction}
    if not cycles:
        raise ConfigError(
            f"Expected sweeps of both directions (potentiation and depression) in {path}, but "
            f"got no {direction} rows."
        )
    for cycle, rows in cycles.items():
        if len(rows) < 2:
            raise ConfigError(
                f"Expected at least 2 readings in each sweep, but got {len(rows)} in the "
                f"{direction} sweep of cycle {cycle!r} in {path}, line {rows[0][2]}."
            )
    labels = tuple(cycles)
    reference = [r[0] for r in cycles[labels[0]]]
    for cycle in labels[1:]:
        pulses = [r[0] for r in cycles[cycle]]
        if pulses != reference:
            rows = cycles[cycle]
            raise ConfigError(
                f"Expected every {direction} sweep to have the same pulse numbers, as cycle "
                f"{labels[0]!r} ({_grid(reference)}), but got {_grid(pulses)} in cycle {cycle!r} "
                f"({path}, lines {rows[0][2]}-{rows[-1][2]})."
            )
    data = np.array([[r[1] for r in cycles[c]] for c in labels], dtype=np.float64)
    raw_mean = data.mean(axis=0)
    sign = SIGNS[direction]
    if not sign * (raw_mean[-1] - raw_mean[0]) > 0:
        verb = "increase" if sign > 0 else "decrease"
        raise ConfigError(
            f"Expected the mean {direction} curve to {verb} from its first to its last pulse in "
            f"{path}, but got {raw_mean[0]:.4g} S at pulse {reference[0]:g} and "
            f"{raw_mean[-1]:.4g} S at pulse {reference[-1]:g} (are the directions swapped?)."
        )
    mean = sign * monotone_fit(sign * raw_mean)
    pooled = int(np.count_nonzero(~np.isclose(mean, raw_mean, rtol=1e-12, atol=0.0)))
    return Curve(
        direction=direction,
        pulses=np.asarray(reference, dtype=np.float64),
        cycles=data,
        cycle_labels=labels,
        raw_mean=raw_mean,
        mean=mean,
        pooled=pooled,
        sigma_step=0.0,
    )


def _grid(pulses: list[float]) -> str:
    return f"pulses {pulses[0]:g} to {pulses[-1]:g}, {len(pulses)} readings"


def _with_sigma(curve: Curve, sigma: float) -> Curve:
    return Curve(**{**curve.__dict__, "sigma_step": sigma})


def monotone_fit(y: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [sum, count] of each pooled block
    for value in np.asarray(y, dtype=np.float64):
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return np.concatenate([np.full(int(c), s / c) for s, c in blocks])


def estimate_sigma_step(curve: Curve) -> float:
    """Per-pulse standard deviation of the conductance change, from the spread between cycles.

    The step of cycle ``c`` from reading ``k`` to ``k + 1`` (``m_k`` pulses apart) is
    ``d_ck = G_c,k+1 - G_ck``. At the same pulse number the cycles are at (nearly) the same state,
    so the spread of ``d_ck`` over cycles is the noise of those ``m_k`` pulses, whose variances add
    up (``m_k * sigma_step**2``). Pooled over the ``K - 1`` steps of ``C`` cycles, with the
    sample-variance correction ``C - 1``::

        sigma_step**2 = sum_{c,k} (d_ck - mean_c d_ck)**2 / m_k  /  ((C - 1) * (K - 1))

    It is unbiased when the mean step does not depend on the state. When it does, a cycle that
    runs high or low also steps a little differently; for steps that cover a fraction ``a`` of
    the distance to an asymptote (the example device, ``a`` = 0.04 and 0.06) this adds about
    ``a / 4`` to the estimate (1 to 1.5 %). Read noise of the instrument adds
    ``2 * sigma_read**2`` to every step's variance: with noisy readings the estimate is an upper
    bound of the write noise. Returns 0 for a single cycle (nothing to compare).
    """
    count, size = curve.cycles.shape
    if count < 2:
        return 0.0
    steps = np.diff(curve.cycles, axis=1)
    spread = steps - steps.mean(axis=0)
    variance = float(np.sum(spread**2 / np.diff(curve.pulses))) / ((count - 1) * (size - 1))
    return math.sqrt(variance)
