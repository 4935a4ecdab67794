"""The LUT update reproduces its data: the mean curves pulse by pulse, the noise, the process."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import isotonic_regression
from txsim_lut_device import example_path, load_device_data

from txsim_core.registry import Registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def data_curves(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(pulses, mean conductance over cycles) per direction, from the CSV read with numpy alone;
    the mean made monotone with scipy's isotonic regression, as the README says."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    table = np.genfromtxt(lines, delimiter=",", names=True, dtype=None, encoding=None)
    curves = {}
    for direction, sign in (("potentiation", 1.0), ("depression", -1.0)):
        rows = table[table["direction"] == direction]
        pulses = np.unique(rows["pulse"]).astype(float)
        mean = np.array([rows["conductance"][rows["pulse"] == p].mean() for p in pulses])
        curves[direction] = (pulses, sign * isotonic_regression(sign * mean).x)
    return curves


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("direction", ["potentiation", "depression"])
def test_single_pulse_requests_follow_the_mean_curve_of_the_data(registry, direction, dtype):
    """From the end of the range where the sweep starts, ask each time for the data's mean step
    from the present state: the device walks along the measured mean curve, pulse by pulse."""
    update = registry.build("update", "lut", rounding="nearest", noise_scale=0.0)
    pulses, mean = data_curves(example_path())[direction]
    sign = 1.0 if direction == "potentiation" else -1.0
    start = update.g_min if sign > 0 else update.g_max
    p0 = np.interp(sign * start, sign * mean, pulses)
    expected = np.clip(
        np.interp(p0 + np.arange(len(pulses)), pulses, mean), update.g_min, update.g_max
    )
    g = torch.full((1, 2, 3, 4), start, dtype=dtype)
    span = update.g_max - update.g_min
    trajectory = [start]
    for k in range(len(pulses) - 1):
        dg = torch.full_like(g, expected[k + 1] - expected[k])
        g = update.step(g, dg, generator())
        assert float(g.max() - g.min()) == 0.0  # every device did the same
        trajectory.append(float(g.flatten()[0]))
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(trajectory, expected, rtol=0, atol=tolerance * span)
    # and the steps differ along the curve: the device is non-linear
    steps = np.abs(np.diff(expected))
    assert steps[:8].mean() > 4 * steps[-8:].mean()


def test_a_request_of_several_pulses_lands_on_the_curve(registry):
    """A request for a target within 0.4 pulse of n pulses along the curve gets exactly n."""
    update = registry.build("update", "lut", rounding="nearest", noise_scale=0.0)
    for direction, sign in (("potentiation", 1.0), ("depression", -1.0)):
        pulses, mean = data_curves(example_path())[direction]
        g0 = torch.tensor([mean[10]], dtype=torch.float64)
        for n in (1, 5, 20):
            for offset in (-0.4, 0.0, 0.4):
                request = np.interp(10 + n + offset, pulses, mean) - mean[10]
                assert sign * request > 0
                out = update.step(g0, torch.tensor([request], dtype=torch.float64))
                assert float(out[0]) == pytest.approx(mean[10 + n], rel=1e-12)


def test_the_device_is_non_linear_and_asymmetric(registry):
    """The same |dG| needs the number of pulses that the inverse of each measured curve gives:
    near the bottom of the range potentiation is fast and depression slow, near the top the
    reverse."""
    update = registry.build("update", "lut", noise_scale=0.0)
    curves = data_curves(example_path())
    counts = {}
    for state in (3e-6, 8e-6):
        g = torch.tensor([state, state], dtype=torch.float64)
        dg = torch.tensor([5e-7, -5e-7], dtype=torch.float64)
        up, down = update.pulse_count(g, dg).numpy()
        for count, direction, sign in ((up, "potentiation", 1.0), (down, "depression", -1.0)):
            pulses, mean = curves[direction]
            target = np.interp(sign * (state + sign * 5e-7), sign * mean, pulses)
            assert count == pytest.approx(target - np.interp(sign * state, sign * mean, pulses))
        counts[state] = (up, down)
    assert counts[3e-6][1] > 2 * counts[3e-6][0]
    assert counts[8e-6][0] > 2 * counts[8e-6][1]


@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_stochastic_rounding_moves_by_whole_pulses_with_the_requested_probability(
    registry, fraction
):
    update = registry.build("update", "lut", noise_scale=0.0)
    nearest = registry.build("update", "lut", noise_scale=0.0, rounding="nearest")
    _, mean = data_curves(example_path())["potentiation"]
    size = 50_000
    g = torch.full((size,), mean[20], dtype=torch.float64)
    dg = torch.full_like(g, fraction * (mean[21] - mean[20]))
    out = update.step(g, dg, generator(5)).numpy()
    moved = np.isclose(out, mean[21], rtol=1e-12)
    assert np.all(moved | (out == mean[20]))  # whole pulses only
    stderr = np.sqrt(fraction * (1 - fraction) / size)
    assert abs(moved.mean() - fraction) < 5 * stderr
    lost = nearest.step(g, dg).numpy()
    assert np.all(lost == (mean[21] if fraction > 0.5 else mean[20]))


def test_stochastic_rounding_writes_the_requested_change_on_average(registry):
    update = registry.build("update", "lut", noise_scale=0.0)
    g = torch.full((50_000,), 4e-6, dtype=torch.float64)
    for request in (3e-7, -3e-7, 1.3e-6, -1.3e-6):
        out = update.step(g, torch.full_like(g, request), generator(2))
        assert float((out - g).mean()) == pytest.approx(request, rel=0.01)


@pytest.mark.parametrize("noise_scale", [1.0, 2.5])
@pytest.mark.parametrize("direction", ["potentiation", "depression"])
def test_write_noise_is_gaussian_with_the_estimated_sigma_per_sqrt_pulse(
    registry, direction, noise_scale
):
    update = registry.build("update", "lut", rounding="nearest", noise_scale=noise_scale)
    quiet = registry.build("update", "lut", rounding="nearest", noise_scale=0.0)
    curve = load_device_data(example_path()).curve(direction)
    size, pulses = 100_000, 4
    g0 = float(curve.mean[20])
    request = float(curve.mean[20 + pulses]) - g0
    g = torch.full((size,), g0, dtype=torch.float64)
    dg = torch.full_like(g, request)
    mean_change = float(quiet.step(g, dg)[0]) - g0
    assert mean_change == pytest.approx(request, rel=1e-12)
    change = (update.step(g, dg, generator(11)) - g).numpy()
    sigma = noise_scale * curve.sigma_step * np.sqrt(pulses)
    assert abs(change.mean() - mean_change) < 5 * sigma / np.sqrt(size)
    assert change.std() == pytest.approx(sigma, rel=5 / np.sqrt(2 * size))
    assert stats.kstest((change - mean_change) / sigma, "norm").pvalue > 1e-3


def test_no_noise_without_pulses(registry):
    """A request below half a pulse, rounded to none, writes nothing: not even noise."""
    update = registry.build("update", "lut", rounding="nearest", noise_scale=3.0)
    g = torch.full((1000,), 5e-6, dtype=torch.float64)
    assert torch.equal(update.step(g, torch.full_like(g, 1e-10), generator()), g)


def test_the_model_reproduces_the_spread_of_the_process_that_made_its_data(
    registry, make_example, tmp_path
):
    """Data from 40 cycles of a known noisy process in, a LUT model out; then 4,000 devices driven
    by the model, one pulse per update, against 4,000 fresh runs of the process itself. The mean
    and the spread after 8 to 48 pulses agree: the state dependence of the steps (which damps the
    spread of the process) comes out of the mean curve, the noise out of the estimator."""
    sigma = 4e-8
    path = tmp_path / "process.csv"
    make_example.write_csv(make_example.simulate(40, 64, sigma, sigma, seed=1), path)
    update = registry.build("update", "lut", data=str(path), rounding="nearest")
    curve = update.measurement.potentiation
    start = update.g_min
    devices, pulses = 4000, 64
    g = torch.full((devices,), start, dtype=torch.float64)
    gen = generator(8)
    model_states = [g.numpy().copy()]
    for _ in range(pulses):
        position = curve.position(g.numpy())
        one_pulse = torch.from_numpy(curve.conductance(position + 1) - curve.conductance(position))
        g = update.step(g, one_pulse, gen)
        model_states.append(g.numpy().copy())
    # the process, independently, in numpy
    rng = np.random.default_rng(99)
    x = np.full(devices, start)
    process_states = [x.copy()]
    for _ in range(pulses):
        x = x + make_example.A_POT * (make_example.G_TOP - x) + sigma * rng.standard_normal(devices)
        process_states.append(x.copy())
    span = update.g_max - update.g_min
    for k in (8, 16, 32, 48):  # beyond, devices reach the end of the data's curve (g_max)
        model, process = model_states[k], process_states[k]
        assert model.mean() == pytest.approx(process.mean(), abs=0.003 * span)
        assert model.std() == pytest.approx(process.std(), rel=0.12)


def test_a_given_sigma_step_replaces_the_estimate(registry, write_data):
    """A digitized curve has one cycle and so no estimate; the noise can then be given."""
    text = "cycle,direction,pulse,conductance\n"
    text += "".join(f"1,potentiation,{k},{(1 + k) * 1e-6}\n" for k in range(10))
    text += "".join(f"1,depression,{k},{(10 - k) * 1e-6}\n" for k in range(10))
    path = write_data(text)
    g = torch.full((100_000,), 5e-6, dtype=torch.float64)
    dg = torch.full_like(g, 2e-6)  # two pulses
    quiet = registry.build("update", "lut", data=str(path), rounding="nearest")
    assert torch.allclose(quiet.step(g, dg, generator(1)), g + 2e-6, rtol=1e-12, atol=0)
    noisy = registry.build("update", "lut", data=str(path), rounding="nearest", sigma_step=1e-8)
    change = (noisy.step(g, dg, generator(1)) - g - 2e-6).numpy()
    assert change.std() == pytest.approx(1e-8 * np.sqrt(2), rel=5 / np.sqrt(2 * g.numel()))


def test_interpolation_agrees_with_numpy():
    from txsim_lut_device.models import PiecewiseLinear

    rng = np.random.default_rng(4)
    xp = np.cumsum(rng.uniform(0.0, 1.0, 50))
    xp[10:13] = xp[10]  # a flat stretch, as a pooled monotone fit makes
    fp = rng.normal(size=50)
    x = rng.uniform(xp[0] - 1, xp[-1] + 1, (100, 100))
    cpu = torch.device("cpu")
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        f = PiecewiseLinear(xp, fp, cpu, dtype)
        assert f.spacing is None
        got = f(torch.from_numpy(x).to(dtype)).double().numpy()
        np.testing.assert_allclose(got, np.interp(x, xp, fp), rtol=0, atol=tolerance * 10)
        at_flat = f(torch.tensor([xp[10]], dtype=dtype)).double()
        assert float(at_flat[0]) == pytest.approx(fp[12], abs=tolerance * 10)  # reads as its end
    grid = np.arange(0.0, 64.0, 2.0)
    f = PiecewiseLinear(grid, fp[:32], cpu, torch.float64)
    assert f.spacing == 2.0  # evenly spaced: computed, not searched
    got = f(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.interp(x, grid, fp[:32]), rtol=0, atol=1e-12)


def test_unevenly_spaced_readings_are_interpolated_in_pulses(registry, write_data):
    """Readings after 0, 1, 2, 4, 8 and 16 pulses: a request of 3 pulses from pulse 1 lands at
    pulse 4; one of 2 pulses from pulse 4 lands halfway between the readings at 4 and 8; down
    from pulse 2, 4 pulses land halfway between the readings at 4 and 8."""
    pulses = [0, 1, 2, 4, 8, 16]
    up = [1e-6, 2e-6, 3e-6, 4.5e-6, 6e-6, 7e-6]
    down = [7e-6, 5e-6, 4e-6, 3e-6, 2e-6, 1e-6]
    text = "cycle,direction,pulse,conductance\n"
    text += "".join(f"1,potentiation,{k},{g}\n" for k, g in zip(pulses, up, strict=True))
    text += "".join(f"1,depression,{k},{g}\n" for k, g in zip(pulses, down, strict=True))
    update = registry.build("update", "lut", data=str(write_data(text)), rounding="nearest")
    g = torch.tensor([2e-6, 4.5e-6, 4e-6], dtype=torch.float64)
    dg = torch.tensor([2.5e-6, 0.75e-6, -1.5e-6], dtype=torch.float64)
    assert update.pulse_count(g, dg).tolist() == pytest.approx([3.0, 2.0, 4.0])
    out = update.step(g, dg).tolist()
    assert out == pytest.approx([4.5e-6, 5.25e-6, 2.5e-6], rel=1e-12)
