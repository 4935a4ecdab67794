"""Reading device data: the example, the estimators, and clear errors for bad files."""

from __future__ import annotations

import filecmp
import os

import numpy as np
import pytest
from scipy.optimize import isotonic_regression
from txsim_lut_device import example_path, load_device_data
from txsim_lut_device.__main__ import main as check_main
from txsim_lut_device.measurement import monotone_fit, parse_device_data

import txsim_core
from txsim_core.registry import Registry

HEADER = "cycle,direction,pulse,conductance\n"


def sweep(cycle: int, direction: str, values: list[float], first: int = 0) -> str:
    return "".join(f"{cycle},{direction},{first + k},{g}\n" for k, g in enumerate(values))


UP = [1e-6, 3e-6, 5e-6, 6e-6]
DOWN = [6e-6, 3e-6, 2e-6, 1e-6]
GOOD = HEADER + sweep(1, "potentiation", UP) + sweep(1, "depression", DOWN)


def reference_means(path) -> dict[str, np.ndarray]:
    """Mean conductance over cycles at each pulse, per direction, read with numpy alone."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    table = np.genfromtxt(lines, delimiter=",", names=True, dtype=None, encoding=None)
    means = {}
    for direction in ("potentiation", "depression"):
        rows = table[table["direction"] == direction]
        pulses = np.unique(rows["pulse"])
        means[direction] = np.array(
            [rows["conductance"][rows["pulse"] == p].mean() for p in pulses]
        )
    return means


def test_the_example_is_read_as_numpy_reads_it() -> None:
    data = load_device_data(None)
    assert data.path == example_path()
    means = reference_means(example_path())
    for direction, mean in means.items():
        curve = data.curve(direction)
        assert curve.cycles.shape == (3, 65)
        np.testing.assert_allclose(curve.raw_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(curve.pulses, np.arange(65))
    pot, dep = means["potentiation"], means["depression"]
    assert data.g_min == pytest.approx(max(pot.min(), dep.min()), rel=1e-12)
    assert data.g_max == pytest.approx(min(pot.max(), dep.max()), rel=1e-12)
    # the Ag/Si range of the TxSim paper, about 1 MOhm to 100 kOhm
    assert 0.9e-6 < data.g_min < 1.2e-6 and 0.95e-5 < data.g_max < 1.05e-5


def test_the_bundled_file_is_what_the_documented_script_writes(make_example, tmp_path) -> None:
    out = tmp_path / "example.csv"
    make_example.main([str(out)])
    assert filecmp.cmp(out, example_path(), shallow=False)
    assert "NOT A MEASUREMENT" in example_path().read_text().splitlines()[0]


def test_monotone_fit_is_the_isotonic_least_squares_fit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = np.cumsum(rng.normal(0.1, 1.0, size=rng.integers(2, 40)))
        np.testing.assert_allclose(monotone_fit(y), isotonic_regression(y).x, rtol=1e-12)


def test_a_non_monotone_mean_curve_is_smoothed_and_counted(write_data) -> None:
    path = write_data(
        HEADER + sweep(1, "potentiation", [1e-6, 4e-6, 3e-6, 6e-6]) + sweep(1, "depression", DOWN)
    )
    curve = load_device_data(path).potentiation
    np.testing.assert_allclose(curve.mean, [1e-6, 3.5e-6, 3.5e-6, 6e-6])
    assert curve.pooled == 2


@pytest.mark.parametrize(("cycles", "sigma_pot", "sigma_dep"), [(40, 3e-8, 3e-8), (30, 1e-8, 5e-8)])
def test_sigma_step_recovers_the_noise_of_the_process_that_made_the_data(
    make_example, tmp_path, cycles, sigma_pot, sigma_dep
) -> None:
    """Known per-pulse noise in, the estimate out: 64 steps x (C - 1) cycles of freedom give a
    relative standard error of 1 / sqrt(2 * 64 * (C - 1)), about 1.5 %; the documented bias of
    a state-dependent step is about a / 4 (1 to 1.5 %)."""
    path = tmp_path / "many.csv"
    make_example.write_csv(make_example.simulate(cycles, 64, sigma_pot, sigma_dep, seed=7), path)
    data = load_device_data(path)
    for curve, sigma in ((data.potentiation, sigma_pot), (data.depression, sigma_dep)):
        stderr = 1 / np.sqrt(2 * 64 * (cycles - 1))
        assert curve.sigma_step == pytest.approx(sigma, rel=4 * stderr + 0.015)


def test_sigma_step_is_per_pulse_when_readings_skip_pulses(make_example, tmp_path) -> None:
    """Readings every 4th pulse: each step carries 4 pulses of noise, the estimate is per pulse."""
    rows = make_example.simulate(40, 64, 3e-8, 3e-8, seed=3)
    path = tmp_path / "sparse.csv"
    make_example.write_csv([r for r in rows if r[2] % 4 == 0], path)
    data = load_device_data(path)
    assert data.potentiation.pulses[1] == 4
    stderr = 1 / np.sqrt(2 * 16 * 39)
    for curve in (data.potentiation, data.depression):
        assert curve.sigma_step == pytest.approx(3e-8, rel=4 * stderr + 0.02)


def test_sigma_step_is_the_pooled_spread_of_steps_at_the_same_pulse(write_data) -> None:
    """Two cycles with steps (2, 4) and (4, 2) uS: each step differs by 1 uS from its mean."""
    text = (
        HEADER
        + sweep(1, "potentiation", [1e-6, 3e-6, 7e-6])
        + sweep(2, "potentiation", [1e-6, 5e-6, 7e-6])
    )
    text += sweep(1, "depression", [7e-6, 1e-6]) + sweep(2, "depression", [7e-6, 1e-6])
    data = load_device_data(write_data(text))
    # sum of squares 4 * (1e-6)**2 over (C - 1) * (K - 1) = 2 -> sigma^2 = 2e-12
    assert data.potentiation.sigma_step == pytest.approx(np.sqrt(2e-12), rel=1e-9)
    assert data.depression.sigma_step == 0.0


def test_one_cycle_gives_no_noise(write_data) -> None:
    data = load_device_data(write_data(GOOD))
    assert data.potentiation.sigma_step == 0.0 and data.depression.sigma_step == 0.0


def test_comments_extra_columns_case_and_a_byte_order_mark_are_accepted(write_data) -> None:
    text = "\ufeff# measured 2024-05-01, V_read = 0.1 V\n\nConductance,Pulse,Direction,Cycle,T_K\n"
    for k, g in enumerate(UP):
        text += f"{g},{k + 1},Potentiation,A,300\n"
    for k, g in enumerate(DOWN):
        text += f" {g} , {k + 1} , DEPRESSION , A , 300\n"
    data = load_device_data(write_data(text))
    np.testing.assert_allclose(data.potentiation.mean, UP)
    np.testing.assert_allclose(data.depression.pulses, [1, 2, 3, 4])
    assert (data.g_min, data.g_max) == (1e-6, 6e-6)


def test_files_are_cached_until_they_change(write_data) -> None:
    path = write_data(GOOD)
    assert load_device_data(path) is load_device_data(str(path))
    first = load_device_data(path)
    path.write_text(GOOD.replace("6e-06", "7e-06").replace(",6e-6", ",7e-6"))
    os.utime(path, ns=(0, 10**18))
    assert load_device_data(path) is not first
    assert load_device_data(path).g_max == 7e-6


BAD_FILES = [
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("cycle,direction,pulse,g\n1,potentiation,0,1e-6\n", r"line 1.*missing: conductance"),
    ("cycle;direction;pulse;conductance\n", "use ';' or tabs"),
    (HEADER + "1,up,0,1e-6\n", r"line 2, but got 'up'"),
    (HEADER + "1,potentiation,0,1e-6,7\n", r"4 comma-separated fields.*got 5 in .*line 2"),
    (HEADER + ",potentiation,0,1e-6\n", r"cycle label in .*line 2"),
    (HEADER + "1,potentiation,zero,1e-6\n", r"number as pulse in .*line 2, but got 'zero'"),
    (HEADER + "1,potentiation,0.5,1e-6\n", r"whole number of pulses in .*line 2"),
    (HEADER + "1,potentiation,0,nan\n", r"finite number as conductance in .*line 2"),
    (HEADER + "1,potentiation,0,5.2\n", r"in siemens.*line 2, but got 5.2.*1e-6"),
    (HEADER + "1,potentiation,0,-1e-6\n", r"in siemens.*line 2"),
    (
        HEADER + sweep(1, "potentiation", UP) + "1,potentiation,2,7e-6\n",
        r"pulse 2 in .*line 6 after pulse 3 \(line 5\)",
    ),
    (HEADER + sweep(1, "potentiation", UP), "no depression rows"),
    (
        HEADER + sweep(1, "potentiation", UP) + "1,depression,0,6e-6\n",
        r"at least 2 readings.*got 1.*cycle '1'.*line 6",
    ),
    (
        GOOD + sweep(2, "potentiation", UP, first=1) + sweep(2, "depression", DOWN),
        r"same pulse numbers.*pulses 1 to 4.*cycle '2'.*lines 10-13",
    ),
    (HEADER + sweep(1, "potentiation", DOWN) + sweep(1, "depression", UP), "directions swapped"),
    (
        HEADER + sweep(1, "potentiation", [1e-6, 2e-6]) + sweep(1, "depression", [5e-6, 3e-6]),
        "common range",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_bad_files_raise_config_errors_naming_the_file_and_the_problem(
    write_data, text, problem
) -> None:
    path = write_data(text, name="my_device.csv")
    with pytest.raises(txsim_core.ConfigError, match=problem) as info:
        parse_device_data(path)
    assert str(path) in str(info.value)
    # through the registry, as a configuration would build it: the model and the file are named
    for kind in ("mapping", "update"):
        with pytest.raises(txsim_core.ConfigError, match="lut") as info:
            Registry().build(kind, "lut", data=str(path))
        assert "my_device.csv" in str(info.value) and "Expected" in str(info.value)


def test_a_missing_file_and_a_folder_are_named(tmp_path) -> None:
    with pytest.raises(txsim_core.ConfigError, match=r"'nope.csv': no such file \(looked for /"):
        load_device_data("nope.csv")
    with pytest.raises(txsim_core.ConfigError, match="not a file"):
        load_device_data(tmp_path)


def test_the_checking_command(write_data, capsys) -> None:
    assert check_main([]) == 0
    out = capsys.readouterr().out
    assert "example_device.csv" in out and "sigma_step" in out
    assert check_main([str(write_data(HEADER))]) == 1
    assert "no potentiation rows" in capsys.readouterr().err
