"""References for array solvers: the crossbar circuit in ngspice, and a sparse nodal solve.

Both build exactly the circuit of ``docs/explanation/circuit.md``, for each direction as a circuit
of its own (not by transposing the other one):

* forward: row i is driven by ``V[i]`` through ``r_source`` and one ``r_row`` segment before cell
  (i, 0), one ``r_row`` between consecutive cells, far end open; column j has one ``r_col``
  between consecutive cells and one after cell (N-1, j), then ``r_sink`` to a virtual ground whose
  current is the output ``I[j]``; its top end is open.
* backward: column j is driven by ``V[j]`` through ``r_source`` at its bottom end, row i is sensed
  at its left end through ``r_sink``; the same wire segments, the other ends open.

:func:`simulate` writes a netlist (:func:`netlist`), runs ``ngspice -b`` and reads the sensed
currents back from an ASCII raw file (16 significant digits). :func:`nodal_effective_conductance`
solves the nodal equations of the same circuit with :func:`scipy.sparse.linalg.splu`, one right
hand side per input line, and returns the exact effective conductance matrix; it is the second
reference of the solver tests and the baseline of ``benchmarks/solvers.py``.

Arrays are numpy arrays (or anything :func:`numpy.asarray` accepts) in SI units: siemens, volts,
ohms, amperes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

Direction = Literal["forward", "backward"]

__all__ = [
    "available",
    "netlist",
    "nodal_currents",
    "nodal_effective_conductance",
    "simulate",
]


def available(executable: str = "ngspice") -> bool:
    """Whether the ngspice executable can be found on the ``PATH``."""
    return shutil.which(executable) is not None


def _check(g: np.ndarray, direction: str, resistances: dict[str, float]) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or 0 in g.shape:
        raise ValueError(f"Expected conductances of shape (N, M), but got shape {g.shape}.")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError("Expected finite, non-negative conductances, but got other values.")
    if direction not in ("forward", "backward"):
        raise ValueError(f"Expected direction 'forward' or 'backward', but got {direction!r}.")
    for name, value in resistances.items():
        low_ok = value > 0 if name in ("r_row", "r_col") else value >= 0
        if not (np.isfinite(value) and low_ok):
            raise ValueError(f"Expected a valid `{name}`, but got {value!r}.")
    return g


def _inputs(v: np.ndarray, width: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != width:
        raise ValueError(f"Expected inputs of shape (K, {width}), but got shape {v.shape}.")
    return v


def _num(x: float) -> str:
    return repr(float(x))


def netlist(
    g: np.ndarray,
    v: np.ndarray,
    *,
    r_source: float,
    r_sink: float,
    r_row: float,
    r_col: float,
    direction: Direction = "forward",
) -> tuple[str, list[str]]:
    """An ngspice netlist of one array under K input vectors.

    Args:
        g: conductances, shape ``(N, M)``, in siemens.
        v: input voltages, shape ``(K, N)`` forward or ``(K, M)`` backward (or one vector).
        r_source: driver resistance in ohms (0: ideal source).
        r_sink: sense resistance in ohms (0: ideal virtual ground).
        r_row: row-wire resistance per segment in ohms (> 0).
        r_col: column-wire resistance per segment in ohms (> 0).
        direction: ``"forward"`` (rows driven) or ``"backward"`` (columns driven).

    Returns:
        The netlist text and the names of the K x outputs ammeter currents, row-major by input.
        The array is a subcircuit instantiated once per input vector, each copy with its own
        sources and ammeters, so one operating-point analysis solves all K inputs.
    """
    g = _check(g, direction, dict(r_source=r_source, r_sink=r_sink, r_row=r_row, r_col=r_col))
    n, m = g.shape
    v = _inputs(v, n if direction == "forward" else m)
    lines = [
        f"* txsim crossbar {n}x{m}, {direction}, {v.shape[0]} input vectors",
        ".options RELTOL=1e-9 ABSTOL=1e-18 VNTOL=1e-12",
        ".subckt xbar " + " ".join([f"t{i}" for i in range(n)] + [f"b{j}" for j in range(m)]),
    ]
    for i in range(n):
        lines.append(f"rr{i}_0 t{i} r{i}_0 {_num(r_row)}")
        lines.extend(f"rr{i}_{j} r{i}_{j - 1} r{i}_{j} {_num(r_row)}" for j in range(1, m))
    for i in range(n):
        for j in range(m):
            if g[i, j] > 0:
                lines.append(f"rg{i}_{j} r{i}_{j} c{i}_{j} {_num(1.0 / g[i, j])}")
    for j in range(m):
        lines.extend(f"rc{i}_{j} c{i - 1}_{j} c{i}_{j} {_num(r_col)}" for i in range(1, n))
        lines.append(f"rc{n}_{j} c{n - 1}_{j} b{j} {_num(r_col)}")
    lines.append(".ends")
    drive_prefix, sense_prefix = ("t", "b") if direction == "forward" else ("b", "t")
    n_sense = m if direction == "forward" else n
    currents = []
    for k, row in enumerate(v):
        ports = {f"t{i}": f"k{k}t{i}" for i in range(n)} | {f"b{j}": f"k{k}b{j}" for j in range(m)}
        lines.append(f"x{k} " + " ".join(ports.values()) + " xbar")
        for d, volts in enumerate(row):
            node = ports[f"{drive_prefix}{d}"]
            if r_source > 0:
                lines.append(f"vin{k}_{d} k{k}s{d} 0 DC {_num(volts)}")
                lines.append(f"rsrc{k}_{d} k{k}s{d} {node} {_num(r_source)}")
            else:
                lines.append(f"vin{k}_{d} {node} 0 DC {_num(volts)}")
        for s in range(n_sense):
            node = ports[f"{sense_prefix}{s}"]
            if r_sink > 0:
                lines.append(f"rsnk{k}_{s} {node} k{k}q{s} {_num(r_sink)}")
                lines.append(f"vam{k}_{s} k{k}q{s} 0 DC 0")
            else:
                lines.append(f"vam{k}_{s} {node} 0 DC 0")
            currents.append(f"i(vam{k}_{s})")
    for start in range(0, len(currents), 8):
        lines.append(("+ " if start else ".save ") + " ".join(currents[start : start + 8]))
    lines += [".control", "set filetype=ascii", "op", "write out.raw", ".endc", ".end", ""]
    return "\n".join(lines), currents


def _read_raw(path: Path) -> dict[str, float]:
    text = path.read_text().splitlines()
    names: list[str] = []
    values: list[float] = []
    section = None
    for line in text:
        if line.startswith("Variables:"):
            section = "vars"
            continue
        if line.startswith("Values:"):
            section = "values"
            continue
        parts = line.split()
        if section == "vars" and len(parts) >= 3:
            names.append(parts[1].lower())
        elif section == "values" and parts:
            values.append(float(parts[-1]))
    if len(values) != len(names):
        raise RuntimeError(f"Could not parse the ngspice raw file {path}.")
    return dict(zip(names, values, strict=True))


def simulate(
    g: np.ndarray,
    v: np.ndarray,
    *,
    r_source: float,
    r_sink: float,
    r_row: float,
    r_col: float,
    direction: Direction = "forward",
    executable: str = "ngspice",
    timeout: float = 300.0,
) -> np.ndarray:
    """Sensed currents of one array under K input vectors, computed by ngspice.

    Args:
        g: conductances, shape ``(N, M)``, in siemens.
        v: input voltages, shape ``(K, N)`` forward or ``(K, M)`` backward.
        r_source: driver resistance in ohms.
        r_sink: sense resistance in ohms.
        r_row: row-wire resistance per segment in ohms.
        r_col: column-wire resistance per segment in ohms.
        direction: ``"forward"`` (column currents) or ``"backward"`` (row currents).
        executable: the ngspice command.
        timeout: seconds before ngspice is stopped.

    Returns:
        Currents in amperes, shape ``(K, M)`` forward or ``(K, N)`` backward, positive when they
        flow from the array into the virtual ground.
    """
    text, currents = netlist(
        g, v, r_source=r_source, r_sink=r_sink, r_row=r_row, r_col=r_col, direction=direction
    )
    k = np.atleast_2d(np.asarray(v)).shape[0]
    with tempfile.TemporaryDirectory(prefix="txsim-ngspice-") as tmp:
        (Path(tmp) / "xbar.cir").write_text(text)
        result = subprocess.run(
            [executable, "-b", "xbar.cir"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        raw = Path(tmp) / "out.raw"
        # ngspice -b exits with 1 when the netlist has no .print line, even after a clean run
        # of its .control section; the raw file is what tells success.
        if not raw.exists():
            raise RuntimeError(
                f"ngspice failed (exit {result.returncode}):\n{result.stdout[-2000:]}"
                f"\n{result.stderr[-2000:]}"
            )
        values = _read_raw(raw)
    missing = [name for name in currents if name not in values]
    if missing:
        raise RuntimeError(f"ngspice did not report {missing[:3]}:\n{result.stdout[-2000:]}")
    out = np.array([values[name] for name in currents])
    return out.reshape(k, -1)


def _nodal_system(
    g: np.ndarray, r_source: float, r_sink: float, r_row: float, r_col: float, direction: str
) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray, float, float]:
    """Nodal matrix of the circuit, with the driven and sensed nodes and their conductances.

    Unknowns: row nodes ``u[i, j]`` then column nodes ``w[i, j]``. The terminal resistances are in
    series with the first or last wire segment, so they are merged with it (exact, and valid for
    zero terminal resistance).
    """
    n, m = g.shape
    u = np.arange(n * m).reshape(n, m)
    w = n * m + u
    a = np.concatenate([u[:, :-1].ravel(), w[:-1, :].ravel(), u.ravel()])
    b = np.concatenate([u[:, 1:].ravel(), w[1:, :].ravel(), w.ravel()])
    c = np.concatenate(
        [np.full(n * (m - 1), 1.0 / r_row), np.full((n - 1) * m, 1.0 / r_col), g.ravel()]
    )
    if direction == "forward":
        drive, g_drive = u[:, 0], 1.0 / (r_source + r_row)
        sense, g_sense = w[-1, :], 1.0 / (r_sink + r_col)
    else:
        drive, g_drive = w[-1, :], 1.0 / (r_source + r_col)
        sense, g_sense = u[:, 0], 1.0 / (r_sink + r_row)
    rows = np.concatenate([a, b, a, b, drive, sense])
    cols = np.concatenate([a, b, b, a, drive, sense])
    vals = np.concatenate(
        [c, c, -c, -c, np.full(drive.size, g_drive), np.full(sense.size, g_sense)]
    )
    matrix = sp.csc_matrix((vals, (rows, cols)), shape=(2 * n * m, 2 * n * m))
    return matrix, drive, sense, g_drive, g_sense


def nodal_effective_conductance(
    g: np.ndarray,
    *,
    r_source: float,
    r_sink: float,
    r_row: float,
    r_col: float,
    direction: Direction = "forward",
) -> np.ndarray:
    """Exact effective conductances of one array by a sparse direct nodal solve.

    One LU factorisation (:func:`scipy.sparse.linalg.splu`, symmetric minimum-degree ordering),
    then one right-hand side per driven line: a unit voltage on that line, the others at 0 V.

    Returns:
        ``G_eff`` of shape ``(N, M)`` in siemens: forward ``I_col = V @ G_eff``, backward
        ``I_row = G_eff @ V``.
    """
    g = _check(g, direction, dict(r_source=r_source, r_sink=r_sink, r_row=r_row, r_col=r_col))
    matrix, drive, sense, g_drive, g_sense = _nodal_system(
        g, r_source, r_sink, r_row, r_col, direction
    )
    lu = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A")
    rhs = np.zeros((matrix.shape[0], drive.size))
    rhs[drive, np.arange(drive.size)] = g_drive
    x = lu.solve(rhs)
    t = g_sense * x[sense, :]  # (sensed, driven)
    return t.T if direction == "forward" else t


def nodal_currents(
    g: np.ndarray,
    v: np.ndarray,
    *,
    r_source: float,
    r_sink: float,
    r_row: float,
    r_col: float,
    direction: Direction = "forward",
) -> np.ndarray:
    """Sensed currents for K input vectors by the sparse nodal solve (see :func:`simulate`)."""
    g = _check(g, direction, dict(r_source=r_source, r_sink=r_sink, r_row=r_row, r_col=r_col))
    matrix, drive, sense, g_drive, g_sense = _nodal_system(
        g, r_source, r_sink, r_row, r_col, direction
    )
    v = _inputs(v, drive.size)
    rhs = np.zeros((matrix.shape[0], v.shape[0]))
    rhs[drive, :] = g_drive * v.T
    x = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    return (g_sense * x[sense, :]).T
