"""Write the bundled example data file: a synthetic Ag:Si-like device, NOT a measurement.

    python contrib/txsim-lut-device/scripts/make_example.py            # rewrites the bundled file
    python contrib/txsim-lut-device/scripts/make_example.py out.csv --cycles 50 --sigma 3e-8

The synthetic device follows the exponentially saturating pulse response that published
conductance-versus-pulse curves of Ag:Si (and many other filamentary) synapses show (e.g. Jo et
al., Nano Lett. 10, 1297 (2010), Fig. 3): each identical pulse moves the conductance a fixed
fraction of the way towards an asymptote, plus Gaussian cycle-to-cycle noise::

    potentiation:  G_{k+1} = G_k + a_p * (G_top - G_k) + sigma_p * z
    depression:    G_{k+1} = G_k - a_d * (G_k - G_bot) + sigma_d * z,      z ~ N(0, 1)

clipped to [G_bot, G_top]. Depression is steeper than potentiation (a_d > a_p), as is typical:
the device is asymmetric. The range, 1 MOhm to 100 kOhm (1 uS to 10 uS), is the Ag/Si device of
the TxSim paper. Cycles are measured back to back, as in a lab: potentiation from the state the
previous depression left, then depression from where potentiation ended; reading 0 of a sweep is
the state before its first pulse. The numbers are an illustration of the format only.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

G_TOP = 1.10e-5
"""Asymptote of potentiation, in siemens."""
G_BOT = 0.90e-6
"""Asymptote of depression, in siemens."""
A_POT = 0.04
"""Fraction of the distance to G_TOP that one potentiation pulse covers."""
A_DEP = 0.06
"""Fraction of the distance to G_BOT that one depression pulse covers."""
SIGMA = 2.0e-8
"""Standard deviation of the change of one pulse, in siemens (both directions)."""
G_START = 1.10e-6
"""State of the device before the first cycle, in siemens."""

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "txsim_lut_device" / "data" / "example_device.csv"
)


def simulate(
    cycles: int = 3,
    pulses: int = 64,
    sigma_pot: float = SIGMA,
    sigma_dep: float = SIGMA,
    seed: int = 2024,
) -> list[tuple[int, str, int, float]]:
    """Rows ``(cycle, direction, pulse, conductance)`` of back-to-back measured cycles.

    Args:
        cycles: number of potentiation-depression cycles.
        pulses: pulses per sweep (each sweep has ``pulses + 1`` readings, 0 to ``pulses``).
        sigma_pot: standard deviation of one potentiation pulse's change, in siemens.
        sigma_dep: standard deviation of one depression pulse's change, in siemens.
        seed: seed of the random numbers.
    """
    rng = np.random.default_rng(seed)
    rows = []
    g = G_START
    for cycle in range(1, cycles + 1):
        for direction, sigma in (("potentiation", sigma_pot), ("depression", sigma_dep)):
            rows.append((cycle, direction, 0, g))
            for k in range(1, pulses + 1):
                if direction == "potentiation":
                    g = g + A_POT * (G_TOP - g)
                else:
                    g = g - A_DEP * (g - G_BOT)
                g = float(np.clip(g + sigma * rng.standard_normal(), G_BOT, G_TOP))
                rows.append((cycle, direction, k, g))
    return rows


def noise_free_curve(direction: str, start: float, pulses: int) -> np.ndarray:
    """The noise-free conductance after 0..``pulses`` pulses from ``start`` (closed form)."""
    k = np.arange(pulses + 1, dtype=np.float64)
    if direction == "potentiation":
        return G_TOP - (G_TOP - start) * (1 - A_POT) ** k
    return G_BOT + (start - G_BOT) * (1 - A_DEP) ** k


def write_csv(rows: list[tuple[int, str, int, float]], path: Path, note: str = "") -> None:
    """Write rows in the plugin's format, with ``#`` comment lines first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        for line in note.splitlines():
            handle.write(f"# {line}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["cycle", "direction", "pulse", "conductance"])
        for cycle, direction, pulse, g in rows:
            writer.writerow([cycle, direction, pulse, f"{g:.6e}"])


NOTE = """SYNTHETIC EXAMPLE, NOT A MEASUREMENT: made by scripts/make_example.py (Ag:Si-like
exponentially saturating steps, 1-10 uS, sigma = 2e-8 S per pulse, seed 2024).
cycle: repeated measurement; direction: potentiation | depression; pulse: pulses applied in
this sweep before the reading; conductance: the reading, in siemens."""


def main(argv: list[str] | None = None) -> None:
    """Command line: write a synthetic data file (by default, the bundled example)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--pulses", type=int, default=64)
    parser.add_argument("--sigma", type=float, default=SIGMA, help="per-pulse noise, S")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    rows = simulate(args.cycles, args.pulses, args.sigma, args.sigma, args.seed)
    note = NOTE
    if (args.cycles, args.pulses, args.sigma, args.seed) != (3, 64, SIGMA, 2024):
        note = (
            f"SYNTHETIC, NOT A MEASUREMENT: scripts/make_example.py --cycles {args.cycles} "
            f"--pulses {args.pulses} --sigma {args.sigma} --seed {args.seed}"
        )
    write_csv(rows, args.out, note)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
