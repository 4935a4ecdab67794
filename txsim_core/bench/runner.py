"""Running the benchmark: one worker process per configuration, rows, and the report."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import attrs
import torch

from txsim_core.bench.configs import (
    BenchConfig,
    BenchNetwork,
    select_configs,
    select_networks,
)
from txsim_core.bench.worker import PROGRESS_PREFIX, RESULT_PREFIX
from txsim_core.errors import ConfigError
from txsim_core.tables import format_table

IDEAL_CONVERTERS = "paper-ideal-converters"


def _default_threads() -> int:
    return torch.get_num_threads()


@attrs.frozen(kw_only=True)
class BenchSettings:
    """What to measure and how.

    Args:
        networks: network names (:data:`~txsim_core.bench.configs.NETWORKS`).
        configs: configuration names (:data:`~txsim_core.bench.configs.CONFIGS`); None: all.
        batch_size: training minibatch size.
        batches: timed minibatches of every configuration; None: the network's defaults (an
            epoch of LeNet-5 for every configuration; on ResNet-20, 8 batches for native and
            ideal, 2 for the paper configurations).
        warmup: untimed minibatches first (at least 1); None: the network's default.
        threads: torch threads in each worker; None: this process's torch thread count.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        seed: initial weights, data order and device randomness.
        lr: learning rate of SGD / CrossbarSGD.
        memory_limit_gb: address-space cap of a CPU worker in GiB; None: 80 % of the memory
            available at the start, 0: no cap.
    """

    networks: tuple[str, ...] = ("lenet5",)
    configs: tuple[str, ...] | None = None
    batch_size: int = 128
    batches: int | None = None
    warmup: int | None = None
    threads: int | None = None
    device: str = "cpu"
    seed: int = 0
    lr: float = 0.05
    memory_limit_gb: float | None = None

    def __attrs_post_init__(self) -> None:
        select_networks(self.networks)
        select_configs(self.configs)
        for name, value, low in (
            ("batch_size", self.batch_size, 1),
            ("batches", self.batches, 1),
            ("warmup", self.warmup, 1),
            ("threads", self.threads, 1),
        ):
            if value is not None and (not isinstance(value, int) or value < low):
                raise ConfigError(
                    f"Expected `{name}` to be an integer >= {low}, but got {value!r}."
                )
        if self.device != "cpu" and not (
            self.device.startswith("cuda") and torch.cuda.is_available()
        ):
            raise ConfigError(
                f"Expected device 'cpu', or 'cuda'/'cuda:N' with CUDA present, but got "
                f"{self.device!r}."
            )


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info(settings: BenchSettings) -> dict[str, Any]:
    """The machine and software the figures come from."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": settings.threads or _default_threads(),
        "device": settings.device,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    try:
        with open("/proc/cpuinfo") as file:
            names = [
                line.split(":", 1)[1].strip() for line in file if line.startswith("model name")
            ]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if settings.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(settings.device))
    return info


def _job(
    network: BenchNetwork, config: BenchConfig, settings: BenchSettings, limit: int | None
) -> dict[str, Any]:
    return {
        "network": network.name,
        "config": config.name,
        "batch_size": settings.batch_size,
        "batches": settings.batches,
        "warmup": settings.warmup if settings.warmup is not None else network.warmup,
        "threads": settings.threads or _default_threads(),
        "device": settings.device,
        "seed": settings.seed,
        "lr": settings.lr,
        "memory_limit_bytes": limit,
    }


def run_worker(
    job: dict[str, Any], progress: Callable[[str], None] = lambda line: None
) -> dict[str, Any]:
    """Measure one job in a fresh Python process (see :mod:`txsim_core.bench.worker`); its
    progress lines (one per batch) go to ``progress`` as they come."""
    process = subprocess.Popen(
        [sys.executable, "-m", "txsim_core.bench"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(process.stdout or []), daemon=True)
    reader.start()
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(json.dumps(job))
    process.stdin.close()
    stderr: list[str] = []
    for line in process.stderr:
        if line.startswith(PROGRESS_PREFIX):
            progress("bench " + line[len(PROGRESS_PREFIX) :].rstrip())
        else:
            stderr.append(line)
    returncode = process.wait()
    reader.join()
    for line in reversed(stdout):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = ("".join(stderr) or "".join(stdout)).strip().splitlines()[-3:]
    reason = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    return {"error": f"worker failed ({reason}): {' | '.join(tail)}"}


def _progress_line(row: dict[str, Any]) -> str:
    where = f"{row['network']}/{row['name']}"
    if "skipped" in row:
        return f"bench {where}: skipped ({row['skipped']})"
    if "error" in row:
        return f"bench {where}: failed: {row['error']}"
    floor = row.get("ratio_vs_floor")
    return (
        f"bench {where}: {row['seconds_per_epoch']:.3f} s/epoch ({row['batches_timed']} batches "
        f"timed), {row['ratio_vs_native']:.2f}x native"
        + (f", {floor:.2f}x floor" if floor is not None else "")
        + f", peak {row['peak_memory_mb']:.0f} MB, load {row['load_before']:.1f}"
    )


def run_benchmark(
    settings: BenchSettings, progress: Callable[[str], None] = lambda line: None
) -> list[dict[str, Any]]:
    """Measure every configuration of ``settings`` on every network, each in its own process.

    Returns:
        One row per network and configuration: ``name``, ``network``, ``seconds_per_epoch``
        (median seconds per timed batch times ``batches_per_epoch``; with a solver refreshed every
        R > 1 batches, batches with and without a solve are weighted as in an epoch),
        ``ratio_vs_native``, ``ratio_vs_floor``, ``ratio_vs_floor_plus_solver`` (None where there
        is no floor), ``floor_seconds_per_epoch`` (the products of the DAC passes the step
        drives), ``every_pass_floor_seconds_per_epoch`` and
        ``ratio_vs_every_pass_floor_plus_solver`` (every pass of every DAC, as if none were
        left out), ``solver_seconds_per_epoch``,
        ``peak_memory_mb``, ``batches_timed`` and more (see :func:`txsim_core.bench.worker.
        measure`), plus ``machine``; a configuration that could not run has ``skipped`` or
        ``error`` instead of the figures.
    """
    networks = select_networks(settings.networks)
    configs = select_configs(settings.configs)
    limit = None
    if settings.memory_limit_gb is None:
        available = available_memory_bytes()
        limit = int(0.8 * available) if available else None
    elif settings.memory_limit_gb > 0:
        limit = int(settings.memory_limit_gb * 2**30)
    machine = machine_info(settings)
    rows: list[dict[str, Any]] = []
    for network in networks:
        network_rows: list[dict[str, Any]] = []
        for config in configs:
            base: dict[str, Any] = {"name": config.name, "network": network.name}
            row: dict[str, Any]
            if config.framework == "aihwkit" and importlib.util.find_spec("aihwkit") is None:
                row = {
                    **base,
                    "skipped": "aihwkit is not installed (see issue text: CPU source build)",
                }
            else:
                row = {**base, **run_worker(_job(network, config, settings, limit), progress)}
            row["machine"] = machine
            progress(_progress_line(row))
            network_rows.append(row)
        _add_converter_ratios(network_rows)
        rows.extend(network_rows)
    return rows


def _add_converter_ratios(rows: list[dict[str, Any]]) -> None:
    """``ratio_vs_ideal_converters`` of every paper row: its time over that of the paper system
    with ideal converters, each taken relative to its own native reference (so that load changes
    between the two workers cancel)."""
    reference = next(
        (r for r in rows if r["name"] == IDEAL_CONVERTERS and r.get("ratio_vs_native")), None
    )
    if reference is None:
        return
    for row in rows:
        if row["name"].startswith("paper-") and row.get("ratio_vs_native"):
            row["ratio_vs_ideal_converters"] = row["ratio_vs_native"] / reference["ratio_vs_native"]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_report(rows: list[dict[str, Any]]) -> str:
    """The rows as a table for people, with the machine below."""
    headers = (
        "network",
        "config",
        "s/epoch",
        "x native",
        "x floor",
        "x floor+solver",
        "x every-pass floor+solver",
        "floor s/epoch",
        "solver s/epoch",
        "peak MB",
        "batches timed",
        "load",
    )
    table = []
    notes = []
    for row in rows:
        if "skipped" in row or "error" in row:
            table.append((row["network"], row["name"], *["-"] * 10))
            notes.append(f"{row['network']}/{row['name']}: {row.get('skipped') or row['error']}")
            continue
        table.append(
            (
                row["network"],
                row["name"],
                _fmt(row["seconds_per_epoch"], 3),
                _fmt(row["ratio_vs_native"]),
                _fmt(row["ratio_vs_floor"]),
                _fmt(row["ratio_vs_floor_plus_solver"]),
                _fmt(row["ratio_vs_every_pass_floor_plus_solver"]),
                _fmt(row["floor_seconds_per_epoch"], 3),
                _fmt(row["solver_seconds_per_epoch"], 3),
                _fmt(row["peak_memory_mb"], 0),
                f"{row['batches_timed']}/{row['batches_per_epoch']}",
                f"{row['load_before']:.1f}-{row['load_after']:.1f}",
            )
        )
    lines = [format_table(headers, table)]
    for row in rows:
        if row.get("ratio_vs_ideal_converters") and row["name"] != IDEAL_CONVERTERS:
            lines.append(
                f"{row['network']}/{row['name']}: {row['ratio_vs_ideal_converters']:.2f}x the time "
                f"of {IDEAL_CONVERTERS}"
            )
    lines += notes
    if rows:
        machine = rows[0]["machine"]
        lines.append(
            f"Machine: {machine.get('cpu', machine['processor'])}, {machine['cpu_count']} CPUs, "
            f"{machine['platform']}, Python {machine['python']}, torch {machine['torch']}, "
            f"{machine['threads']} threads, device {machine['device']}"
            + (f" ({machine['gpu']})" if "gpu" in machine else "")
            + f", load average {machine['load_average']} at the start."
        )
    lines.append(
        "Ratios are taken within each configuration's process: native and the matmul floor run "
        "interleaved with it, batch by batch. s/epoch = median s/batch x batches/epoch."
    )
    return "\n".join(lines)
