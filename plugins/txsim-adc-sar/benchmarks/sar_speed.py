"""Time the SAR ADC's fast conversion paths against the reference loop (not a test).

Converts one batch of float32 currents of shape (B, units, channels), by default the size of a
LeNet-5 conv1 call in the paper's configuration, with the reference loop
(``SARADC._convert(current, "loop")``) and with the path ``forward`` picks, checks that both
give the same bits, and prints the medians of several alternating repeats and of the ratios. ``--searchsorted`` also
times the two ``torch.searchsorted`` layouts that the table lookup was chosen over.

    python plugins/txsim-adc-sar/benchmarks/sar_speed.py [--batch 700000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from txsim_adc_sar import SARADC
from txsim_adc_sar.models import _magnitude_thresholds, _transition_levels

from txsim_core.registry import Registry

CASES = [
    ("exact DAC (sigma_cap=0)", {}),
    ("mismatch (sigma_cap=0.01)", {"sigma_cap": 0.01}),
    (
        "mismatch + offset (sigma_cap=0.01, sigma_offset=0.3)",
        {"sigma_cap": 0.01, "sigma_offset": 0.3},
    ),
    ("comparator noise (sigma_noise=0.2)", {"sigma_noise": 0.2}),
]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _seconds(function: Callable[[], object]) -> float:
    _sync()
    start = time.perf_counter()
    function()
    _sync()
    return time.perf_counter() - start


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls (after one warm-up call)."""
    function()
    return statistics.median(_seconds(function) for _ in range(repeats))


def paired_medians(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Median times of two functions run alternately, and the median of the per-pair ratios.

    Alternating keeps a slow spell of a shared machine from favouring one of them.
    """
    first(), second()
    pairs = [(_seconds(first), _seconds(second)) for _ in range(repeats)]
    return (
        statistics.median(a for a, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(a / b for a, b in pairs),
    )


def searchsorted_times(adc: SARADC, current: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Seconds of the two searchsorted layouts over the magnitude thresholds (float32 only).

    Per row: the magnitudes laid out as ``(units * channels, B)`` against per-instance rows
    (the transposes both ways included). Flattened: one sorted sequence of int64 keys, the
    float32 bit pattern (ordered like the value for ``a >= 0``) plus ``instance << 31``.
    """
    batch, units, channels = current.shape
    n = units * channels
    weights = adc.cap_weights.to(current).reshape(n, -1)
    thresholds = _magnitude_thresholds(_transition_levels(weights))  # (n, L)
    magnitude = (current / (adc.full_scale.to(current) / adc.levels)).abs()
    instance = torch.arange(n, device=current.device, dtype=torch.int64)
    keys = (thresholds.view(torch.int32).to(torch.int64) + (instance << 31)[:, None]).reshape(-1)
    shift = (instance << 31).view(1, units, channels)

    def per_row() -> torch.Tensor:
        rows = magnitude.reshape(batch, n).t().contiguous()
        codes = torch.searchsorted(thresholds, rows, right=True, out_int32=True)
        return codes.t().reshape(batch, units, channels).to(current.dtype)

    def flattened() -> torch.Tensor:
        key = magnitude.view(torch.int32).to(torch.int64).add_(shift)
        return torch.searchsorted(keys, key, right=True, out_int32=True)

    return median_seconds(per_row, repeats), median_seconds(flattened, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=700_000)
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--searchsorted", action="store_true")
    args = parser.parse_args()
    registry = Registry()
    device = torch.device(args.device)
    levels = 2 ** (args.bits - 1) - 1
    shape = (args.batch, args.units, args.channels)
    current = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    current *= 0.4 * levels * 1e-6  # about 1 % of the conversions saturate
    print(
        f"B={args.batch}, units={args.units}, channels={args.channels}, bits={args.bits}, "
        f"float32, device={device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"medians of {args.repeats} alternating repeats"
    )
    for name, extra in CASES:
        params = dict(bits=args.bits, full_scale=levels * 1e-6, **extra)
        reference, fast = (registry.build("adc", "sar", **params) for _ in range(2))
        for adc in (reference, fast):  # the same seed: the same converters and the same noise
            assert isinstance(adc, SARADC)
            adc.to(device).setup(args.units, args.channels, torch.Generator().manual_seed(1))
        expected, got = reference._convert(current, "loop"), fast(current)
        same = torch.equal(expected.view(torch.int32), got.view(torch.int32))
        loop_s, fast_s, ratio = paired_medians(
            lambda a=reference: a._convert(current, "loop"), lambda a=fast: a(current), args.repeats
        )
        print(
            f"{name:55s} loop {loop_s * 1e3:8.1f} ms   fast {fast_s * 1e3:8.1f} ms   "
            f"x{ratio:5.1f}   bit-identical: {same}"
        )
        if args.searchsorted and extra == {"sigma_cap": 0.01}:
            rows_s, flat_s = searchsorted_times(fast, current, args.repeats)
            print(
                f"{'  searchsorted instead, per-row / flattened keys':55s} "
                f"{rows_s * 1e3:8.1f} ms / {flat_s * 1e3:8.1f} ms"
            )


if __name__ == "__main__":
    main()
