"""``txsim bench``: configurations, the matmul floor, and the rows of a (tiny) run."""

from __future__ import annotations

import collections
import json
import math

import attrs
import pytest
import torch
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from txsim_core.bench import CONFIGS, NETWORKS, BenchSettings, format_report, run_benchmark
from txsim_core.bench.floor import record_layer_calls, step_products
from txsim_core.bench.runner import run_worker
from txsim_core.bench.worker import BatchSource, build_txsim, make_step
from txsim_core.cli import cli
from txsim_core.errors import ConfigError
from txsim_core.manager import ENV_DISABLE_AUTOLOAD
from txsim_core.registry import list_models, reset_registry

PAPER_MODELS = {
    "mapping": {"reram"},
    "update": {"reram"},
    "dac": {"1bit"},
    "adc": {"sar"},
    "solver": {"fcm"},
}


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper configurations use the plugins of this repository, installed."""
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD)
    reset_registry()
    for kind, names in PAPER_MODELS.items():
        missing = names - {spec.name for spec in list_models(kind)}
        if missing:
            pytest.skip(f"plugins not installed: {kind} {sorted(missing)}")


def test_an_unknown_configuration_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        BenchSettings(configs=("native", "paper-fmc"))
    message = str(info.value)
    assert "'paper-fmc'" in message
    assert all(repr(name) in message for name in CONFIGS)
    with pytest.raises(ConfigError, match="'lenet5'"):
        BenchSettings(networks=("lenet",))


def test_the_command_is_registered_and_checks_names() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    assert "--quick" in result.output and "--json" in result.output
    result = runner.invoke(cli, ["bench", "--config", "paper-fmc"])
    assert result.exit_code != 0
    assert "paper-fcm" in result.output  # the valid choices are listed


def test_paper_configurations_differ_from_the_preset_only_in_their_solver_or_converters() -> None:
    paper = CONFIGS["paper-fcm"].crossbar
    assert paper is not None
    for name, changed in {
        "paper-ideal-solver": {"solver"},
        "paper-aam": {"solver"},
        "paper-fcm-l10": {"solver"},
        "paper-ideal-converters": {"dac", "adc", "input_bits", "error_bits"},
    }.items():
        config = CONFIGS[name].crossbar
        assert config is not None
        differ = {
            k
            for k in {*paper["crossbar"], *config["crossbar"]}
            if paper["crossbar"].get(k) != config["crossbar"].get(k)
        }
        assert differ == changed, name


class _RecordProducts(TorchDispatchMode):
    """Records the shapes of every matrix product and convolution weight gradient that reaches
    the ATen dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name in ("bmm", "mm"):
            self.seen[(name, tuple(tuple(a.shape) for a in args[:2]))] += 1
        elif name == "convolution_backward" and args[10][1]:  # output_mask: weight grad
            self.seen[("conv_weight", (tuple(args[1].shape), tuple(args[2].shape)))] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.usefixtures("installed_plugins")
def test_the_floor_is_products_that_a_paper_training_step_really_computes() -> None:
    # LeNet-5 on random MNIST-sized inputs (the products depend on shapes only)
    network = attrs.evolve(NETWORKS["lenet5"], data="random")
    device = torch.device("cpu")
    source = BatchSource(network, 3, device, seed=0)
    net, optimizer = build_txsim(CONFIGS["paper-ideal-solver"], network, device, 0, 0.05)
    step = make_step(net, optimizer, device)
    x, y = source.batch(0)
    calls = record_layer_calls(net, lambda: step(x, y))
    assert calls is not None
    assert [c.name for c in calls] == [
        "features.conv1",
        "features.conv2",
        "classifier.fc1",
        "classifier.fc2",
        "classifier.fc3",
    ]
    assert not calls[0].needs_input_grad and all(c.needs_input_grad for c in calls[1:])
    products = step_products(calls)
    assert products is not None
    x, y = source.batch(1)
    with _RecordProducts() as recorder:
        step(x, y)
    seen = recorder.seen
    # on the CPU a layer computes its analog products in parts of rows (cache-sized), and an
    # ADC that calibrates on this minibatch has every part computed once more: the floor's
    # products are the step's, concatenated along the rows, once
    floor_rows: collections.Counter = collections.Counter()
    for product in products:  # every floor product is one that the step computed
        if product.op == "bmm":
            floor_rows[(product.a[0], product.a[2], product.b)] += product.a[1]
            continue
        key = (product.op, (product.a, product.b))
        assert seen[key] > 0, product.describe()
        seen[key] -= 1
    rows: collections.Counter = collections.Counter()
    for (op, (a, b)), n in list(seen.items()):
        if op == "bmm" and (a[0], a[2], b) in floor_rows:
            rows[(a[0], a[2], b)] += n * a[1]
            del seen[(op, (a, b))]
    for key, needed in floor_rows.items():
        assert needed <= rows[key] <= 2 * needed, key
    # conv1: 3 images x 28 x 28 positions x 14 passes (1-bit DAC, 8-bit sign-magnitude), 25 rows
    # used of one array, 4 slices x 6 columns; no backward product for the first layer
    conv1 = [p for p in products if p.layer == "features.conv1"]
    assert [(p.op, p.role, p.a, p.b) for p in conv1] == [
        ("bmm", "forward", (1, 3 * 784 * 14, 25), (1, 25, 4 * 6)),
        ("conv_weight", "weight_grad", (3, 1, 32, 32), (6, 1, 5, 5)),
    ]

    # conv2 takes a ReLU output: its forward drives the 7 passes of the positive phase only,
    # where the floor of every pass counts all 14
    every_pass = step_products([attrs.evolve(c, passes={}) for c in calls])
    assert every_pass is not None
    for floor_products, passes in ((products, 7), (every_pass, 14)):
        (conv2,) = [p for p in floor_products if (p.layer, p.role) == ("features.conv2", "forward")]
        assert conv2.a[1] == 3 * 100 * passes  # 3 images x 10 x 10 positions

    # what the floor leaves out is small: recombining passes and slices (matrix-vector products)
    # and the slice significance
    def flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
        return 2 * math.prod(a) * b[-1]

    left_out = sum(n * flops(a, b) for (_, (a, b)), n in seen.items())
    floor = sum(p.flops for p in products)
    assert left_out < 0.1 * floor


@pytest.mark.usefixtures("installed_plugins")
def test_a_tiny_run_gives_consistent_rows() -> None:
    settings = BenchSettings(
        networks=("lenet5",),
        configs=("native", "ideal", "paper-ideal-solver", "aihwkit"),
        batch_size=4,
        batches=2,
        warmup=1,
        threads=1,
    )
    lines: list[str] = []
    rows = run_benchmark(settings, progress=lines.append)
    assert [r["name"] for r in rows] == ["native", "ideal", "paper-ideal-solver", "aihwkit"]
    summaries = [line for line in lines if "s/epoch" in line or "skipped" in line]
    assert len(summaries) == 4
    json.dumps(rows)  # the --json output
    measured = rows[:3]  # txsim and native; aihwkit (rows[3]) has no floor
    for row in measured:
        assert "error" not in row, row.get("error")
        assert row["network"] == "lenet5"
        assert row["batches_timed"] == 2 and row["batches_per_epoch"] == math.ceil(4000 / 4)
        assert row["threads"] == 1 and row["device"] == "cpu"
        assert row["peak_memory_mb"] >= row["baseline_memory_mb"] > 0
        assert row["solver_seconds_per_epoch"] == 0.0  # no circuit solver in these
        spe = row["seconds_per_epoch"]
        assert spe > 0
        assert row["ratio_vs_native"] == pytest.approx(spe / row["native_seconds_per_epoch"])
        assert row["ratio_vs_floor"] == pytest.approx(spe / row["floor_seconds_per_epoch"])
        assert row["ratio_vs_floor_plus_solver"] == pytest.approx(row["ratio_vs_floor"])
        assert row["floor_seconds_per_epoch"] > 0 and row["floor_gflop_per_step"] > 0
        every_pass = row["every_pass_floor_seconds_per_epoch"]
        assert row["ratio_vs_every_pass_floor_plus_solver"] == pytest.approx(spe / every_pass)
        assert row["machine"]["torch"] == torch.__version__
    native, ideal, paper = measured
    for row in (native, ideal):  # no DAC passes: one floor
        assert row["every_pass_floor_seconds_per_epoch"] == row["floor_seconds_per_epoch"]
    assert native["ratio_vs_native"] == 1.0
    # ideal and native compute the same products; the paper system streams 14 passes of 4 slices
    assert ideal["floor_gflop_per_step"] == pytest.approx(native["floor_gflop_per_step"])
    assert paper["floor_gflop_per_step"] > 20 * native["floor_gflop_per_step"]
    if "skipped" in rows[3]:
        assert "not installed" in rows[3]["skipped"]
    else:  # aihwkit is installed: timed against native in its process, like the others
        assert "error" not in rows[3], rows[3].get("error")
        assert rows[3]["ratio_vs_floor"] is None and rows[3]["ratio_vs_native"] > 0
    report = format_report(rows)
    assert "paper-ideal-solver" in report and "Machine:" in report


@pytest.mark.usefixtures("installed_plugins")
def test_a_worker_reports_its_batches_as_they_go():
    job = {
        "network": "lenet5",
        "config": "paper-ideal-solver",
        "batch_size": 2,
        "batches": 2,
        "warmup": 2,
        "threads": 1,
        "device": "cpu",
        "seed": 0,
        "lr": 0.05,
        "memory_limit_bytes": None,
        "progress_every": 0.0,
    }
    lines: list[str] = []
    row = run_worker(job, progress=lines.append)
    assert "error" not in row and row["batches_timed"] == 2
    assert lines[0] == "bench lenet5/paper-ideal-solver: warm-up batch 1/2 done"
    assert lines[1].startswith("bench lenet5/paper-ideal-solver: warm-up batch 2/2: ")
    assert lines[2].startswith("bench lenet5/paper-ideal-solver: batch 1/2: ")
    assert "native" in lines[2] and "floor" in lines[2]
    assert len(lines) == 4
