"""Speed (and accuracy) of the array solvers ``fcm`` and ``aam`` against a sparse nodal solve.

A script, not a test::

    python benchmarks/solvers.py                  # tables for people
    python benchmarks/solvers.py --json           # one JSON document for scripts
    python benchmarks/solvers.py --accuracy       # also aam's error against fcm per regime
    python benchmarks/solvers.py --plot solvers.png   # also the scaling table as a plot

What is measured (all in one run, so the ratios compare like with like):

* batch: ``effective_conductance`` of one batch of arrays (default 64 arrays of 64 x 64) for
  ``fcm`` (one direction; both directions from one call; on the CPU also one direction with its
  PyTorch operations instead of its C kernels, ``TXSIM_COMPILE=0``), ``aam`` (order 1 and 2),
  and the baseline: :func:`scipy.sparse.linalg.splu` of each array's nodal matrix plus one
  solve per input line (``txsim_core.testing.ngspice.nodal_effective_conductance``), array
  after array. Reported per array, with the baseline's time divided by each solver's.
* scaling: the same per-array times for square arrays of 16 to 256 (fewer arrays at large
  sizes).
* accuracy (``--accuracy``): ``aam``'s error against ``fcm`` for random arrays in the three
  resistance regimes: the largest entry error of ``G_eff`` and the largest output-current error
  for random inputs (uniform and 0/1 in [0, 1] V), both relative to full scale.

Times are wall clock, on the device and with the torch thread count given. The baseline runs on
the CPU; its triangular solves use scipy's BLAS threads, which ``--threads`` limits to the same
count when ``threadpoolctl`` is installed (``blas_threads`` in the output; on a busy machine
idle-spinning BLAS threads can make the baseline several times slower, which would flatter the
speed-ups). In the batch table every method
runs once per repetition, interleaved, after one warm-up repetition; the figures are medians
over ``--repeat`` repetitions, the speed-ups medians of the per-repetition ratios (absolute times
on shared machines drift between runs, ratios taken side by side much less). The scaling table
reports medians of ``--repeat`` runs per method.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

import txsim_core
from txsim_core.compiled import COMPILE_SWITCH
from txsim_core.testing.ngspice import nodal_effective_conductance

REGIMES = {"reram": (1e5, 1e6), "pcm": (1e4, 1e6), "spintronic": (1e3, 1e4)}
RESISTANCES = dict(r_source=100.0, r_sink=100.0, r_row=1.0, r_col=4.6)


def arrays(count: int, rows: int, cols: int, regime: str, seed: int = 0) -> torch.Tensor:
    """Conductances uniform between 1/r_max and 1/r_min of the regime, float64."""
    r_min, r_max = REGIMES[regime]
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.uniform(1.0 / r_max, 1.0 / r_min, (count, rows, cols)))


def median_time(fn: Callable[[], object], repeat: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs, after one warm-up run."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def compiled_kernels_off() -> Iterator[None]:
    """Within: ``TXSIM_COMPILE=0``, so ``fcm`` solves with PyTorch operations, not its C kernels."""
    before = os.environ.get(COMPILE_SWITCH)
    os.environ[COMPILE_SWITCH] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[COMPILE_SWITCH]
        else:
            os.environ[COMPILE_SWITCH] = before


def splu_time(g: torch.Tensor, directions: tuple[str, ...], repeat: int) -> float:
    """Median time per array of the sparse nodal solve, over the arrays of ``g`` (CPU)."""
    host = g.cpu().numpy()

    def run() -> None:
        for a in host:
            for direction in directions:
                nodal_effective_conductance(a, direction=direction, **RESISTANCES)

    return median_time(run, repeat, torch.device("cpu")) / host.shape[0]


def batch_table(args: argparse.Namespace, device: torch.device) -> dict:
    """Interleaved repetitions: every method once per repetition, ratios per repetition."""
    g = arrays(args.arrays, args.size, args.size, args.regime).to(device)
    # reuse_last=False: every timed call solves the network again.
    fcm = txsim_core.build_model("solver", "fcm", reuse_last=False, **RESISTANCES)
    aam1 = txsim_core.build_model("solver", "aam", order=1, **RESISTANCES)
    aam2 = txsim_core.build_model("solver", "aam", order=2, **RESISTANCES)
    host = g[: args.splu_arrays].cpu().numpy()

    def splu(directions: tuple[str, ...]) -> None:
        for a in host:
            for direction in directions:
                nodal_effective_conductance(a, direction=direction, **RESISTANCES)

    def torch_operations() -> object:
        with compiled_kernels_off():
            return fcm.effective_conductance(g)

    methods: dict[str, tuple[Callable[[], object], int]] = {
        "fcm forward": (lambda: fcm.effective_conductance(g), g.shape[0]),
        "fcm both directions": (lambda: fcm.effective_conductances(g), g.shape[0]),
        "aam order 2 forward": (lambda: aam2.effective_conductance(g), g.shape[0]),
        "aam order 1 forward": (lambda: aam1.effective_conductance(g), g.shape[0]),
        "splu forward (baseline)": (lambda: splu(("forward",)), host.shape[0]),
        "splu both directions (baseline)": (
            lambda: splu(("forward", "backward")),
            host.shape[0],
        ),
    }
    if device.type == "cpu":  # fcm's C kernels run on the CPU only
        methods["fcm forward, PyTorch operations"] = (torch_operations, g.shape[0])
    times: dict[str, list[float]] = {name: [] for name in methods}
    for rep in range(args.repeat + 1):  # the first repetition is a warm-up
        for name, (fn, count) in methods.items():
            t = median_time(fn, 1, device) if rep else (fn(), 0.0)[1]
            if rep:
                times[name].append(t / count)
    ratios = {}
    for name in methods:
        if "baseline" in name:
            continue
        base = "splu both directions (baseline)" if "both" in name else "splu forward (baseline)"
        ratios[name] = statistics.median(
            b / t for b, t in zip(times[base], times[name], strict=True)
        )
    return {
        "arrays": g.shape[0],
        "size": args.size,
        "regime": args.regime,
        "splu_arrays": host.shape[0],
        "repetitions": args.repeat,
        "seconds_per_array": {name: statistics.median(ts) for name, ts in times.items()},
        "speedup_vs_splu": ratios,
    }


def scaling_table(args: argparse.Namespace, device: torch.device) -> list[dict]:
    fcm = txsim_core.build_model("solver", "fcm", reuse_last=False, **RESISTANCES)
    aam2 = txsim_core.build_model("solver", "aam", order=2, **RESISTANCES)
    aam1 = txsim_core.build_model("solver", "aam", order=1, max_radius=1.0, **RESISTANCES)
    out = []
    plan = {16: (64, 16), 32: (64, 16), 64: (64, 8), 128: (16, 2), 256: (4, 1)}
    for size in args.sizes:
        count, splu_count = plan.get(size, (max(1, 64 * 64 * 64 // size**3), 1))
        g = arrays(count, size, size, args.regime).to(device)
        repeat = args.repeat if size <= 64 else max(1, args.repeat // 2)
        try:  # order 1 refuses arrays whose path series diverges (large arrays)
            order1 = median_time(lambda g=g: aam1.effective_conductance(g), repeat, device) / count
        except RuntimeError:
            order1 = None
        row = {
            "size": size,
            "arrays": count,
            "fcm": median_time(lambda g=g: fcm.effective_conductance(g), repeat, device) / count,
            "aam order 2": median_time(lambda g=g: aam2.effective_conductance(g), repeat, device)
            / count,
            "aam order 1": order1,
            "splu": splu_time(g[:splu_count], ("forward",), 1),
        }
        out.append(row)
        if not args.json:
            print(f"  measured {size}x{size}", file=sys.stderr)
    return out


def accuracy_table(args: argparse.Namespace, device: torch.device) -> list[dict]:
    fcm = txsim_core.build_model("solver", "fcm", **RESISTANCES)
    out = []
    for regime in REGIMES:
        for size in args.accuracy_sizes:
            g = arrays(args.accuracy_arrays, size, size, regime, seed=1).to(device)
            exact = fcm.effective_conductance(g)
            rng = np.random.default_rng(2)
            v = np.concatenate([rng.random((8, size)), (rng.random((8, size)) < 0.5) * 1.0])
            v = torch.tensor(v, device=device)
            currents = v @ exact  # (arrays, inputs, columns)
            ideal = (v @ g - currents).abs().amax() / currents.abs().amax()
            row = {"regime": regime, "size": size, "ideal current error": float(ideal)}
            for order in (1, 2):
                aam = txsim_core.build_model("solver", "aam", order=order, **RESISTANCES)
                try:
                    approx = aam.effective_conductance(g)
                except RuntimeError as exc:
                    row[f"order {order}"] = f"refused: {str(exc).split(':')[1].strip()[:60]}"
                    continue
                entry = (approx - exact).abs().amax() / exact.abs().amax()
                current = (v @ approx - currents).abs().amax() / currents.abs().amax()
                row[f"order {order} G_eff error"] = float(entry)
                row[f"order {order} current error"] = float(current)
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrays", type=int, default=64, help="arrays in the batch table")
    parser.add_argument("--size", type=int, default=64, help="rows and columns per array")
    parser.add_argument("--regime", choices=list(REGIMES), default="reram")
    parser.add_argument("--splu-arrays", type=int, default=8, help="arrays timed for splu")
    parser.add_argument("--sizes", type=int, nargs="*", default=[16, 32, 64, 128, 256])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--accuracy", action="store_true", help="also aam's error vs fcm")
    parser.add_argument("--accuracy-sizes", type=int, nargs="*", default=[16, 32, 64, 128])
    parser.add_argument("--accuracy-arrays", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--plot", type=Path, help="also write the scaling table as a PNG plot to this file"
    )
    args = parser.parse_args(argv)
    if args.plot and not args.sizes:
        parser.error("--plot draws the scaling table: give it --sizes")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error('--plot needs matplotlib: pip install "txsim[plot]"')
    if args.threads:
        torch.set_num_threads(args.threads)
    limiter, blas = blas_threads(args.threads)
    with limiter:
        result = measure(args, blas)
    report(args, result)
    if args.plot:
        plot_scaling(args.plot, result)


SPEEDUP_TARGET = 30.0
"""The speed-up over splu that issue 6 asks of fcm at 64x64 (drawn on the plot)."""


def plot_scaling(path: Path, result: dict) -> None:
    """Write ``path`` (PNG): milliseconds per array against the array size for every solver
    (left, log-log), and how many times faster than splu each is (right, with issue 6's 30x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["scaling"]
    sizes = [r["size"] for r in rows]
    figure, (times, speedups) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (
        ("fcm", "o-"),
        ("aam order 2", "s--"),
        ("aam order 1", "^--"),
        ("splu", "x:"),
    ):
        own = [r for r in rows if r[name] is not None]  # aam order 1 refuses large arrays
        x = [r["size"] for r in own]
        times.plot(x, [r[name] * 1e3 for r in own], style, label=name)
        if name != "splu":
            speedups.plot(x, [r["splu"] / r[name] for r in own], style, label=name)
    speedups.axhline(
        SPEEDUP_TARGET, color="grey", linewidth=0.8, label=f"{SPEEDUP_TARGET:g}x (issue 6)"
    )
    env = result["environment"]
    times.set_yscale("log")
    speedups.set_ylim(bottom=0)
    for axes, label in ((times, "ms per array (one direction)"), (speedups, "x faster than splu")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [f"{n}x{n}" for n in sizes])
        axes.set_xlabel("array size")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle(
        f"Array solvers, {result['batch']['regime']} cells, torch {env['torch']} on "
        f"{env['device']}, {env['torch_threads']} thread(s)"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def blas_threads(threads: int | None) -> tuple[AbstractContextManager, int | None]:
    """Limit scipy's BLAS threads to ``threads`` now (if threadpoolctl is installed).

    Returns a context whose exit restores the limits, and the BLAS thread count in effect (None
    when unknown).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return nullcontext(), None
    controller = ThreadpoolController()
    limiter = controller.limit(limits=threads, user_api="blas") if threads else nullcontext()
    counts = [
        lib["num_threads"] for lib in ThreadpoolController().info() if lib["user_api"] == "blas"
    ]
    return limiter, max(counts, default=None)


def measure(args: argparse.Namespace, blas: int | None) -> dict:
    """Every table asked for by ``args``, with the environment."""
    device = torch.device(args.device)
    result = {
        "environment": {
            "torch": torch.__version__,
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "blas_threads": blas,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "resistances_ohm": RESISTANCES,
        },
        "batch": batch_table(args, device),
        "scaling": scaling_table(args, device) if args.sizes else [],
    }
    if args.accuracy:
        result["accuracy"] = accuracy_table(args, device)
    return result


def report(args: argparse.Namespace, result: dict) -> None:
    """Print ``result`` as JSON or as tables."""
    if args.json:
        print(json.dumps(result, indent=2))
        return
    env = result["environment"]
    print(
        f"torch {env['torch']} on {env['device']}, {env['torch_threads']} threads; "
        f"scipy BLAS threads: {env['blas_threads'] or 'unknown'}"
    )
    b = result["batch"]
    print(f"\nbatch: {b['arrays']} arrays of {b['size']}x{b['size']}, {b['regime']} cells")
    print(f"{'solver':34s} {'ms per array':>13s} {'x faster than splu':>19s}")
    for name, t in b["seconds_per_array"].items():
        ratio = b["speedup_vs_splu"].get(name)
        print(f"{name:34s} {t * 1e3:13.3f} {'' if ratio is None else f'{ratio:19.1f}'}")
    if result["scaling"]:
        print("\nscaling (ms per array)")
        print(
            f"{'size':>9s} {'arrays':>7s} {'fcm':>10s} {'aam o2':>10s} {'aam o1':>10s} {'splu':>10s}"
        )
        for r in result["scaling"]:
            o1 = "refused" if r["aam order 1"] is None else f"{r['aam order 1'] * 1e3:10.3f}"
            print(
                f"{r['size']:>4d}x{r['size']:<4d} {r['arrays']:7d} {r['fcm'] * 1e3:10.3f} "
                f"{r['aam order 2'] * 1e3:10.3f} {o1:>10s} {r['splu'] * 1e3:10.3f}"
            )
    if args.accuracy:
        print("\naam against fcm (relative to full scale; current error over random inputs)")
        for r in result["accuracy"]:
            parts = [f"ideal {r['ideal current error']:.1e}"]
            for order in (1, 2):
                if f"order {order}" in r:
                    parts.append(f"o{order} {r[f'order {order}']}")
                else:
                    parts.append(
                        f"o{order} G {r[f'order {order} G_eff error']:.1e} "
                        f"I {r[f'order {order} current error']:.1e}"
                    )
            print(f"{r['regime']:>10s} {r['size']:>4d}x{r['size']:<4d} " + "  ".join(parts))


if __name__ == "__main__":
    main()
