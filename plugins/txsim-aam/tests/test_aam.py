"""Tests of the ``aam`` solver against ngspice, a sparse nodal solve and its own limits.

``DOCUMENTED`` holds the error bounds of the README (largest output-current error relative to
full scale, per regime and array size); the ngspice tests check that the model stays within
them and record the error of the ideal solver next to it.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np
import pytest
import torch
from txsim_aam import AAMError
from txsim_aam.models import coupling_radius

import txsim_core
from txsim_core.registry import Registry
from txsim_core.testing import ngspice as ng

RESISTANCES = dict(r_source=100.0, r_sink=100.0, r_row=1.0, r_col=4.6)
REGIMES = {"reram": (1e5, 1e6), "pcm": (1e4, 1e6), "spintronic": (1e3, 1e4)}
SHAPES = [(4, 4), (8, 16), (16, 8), (32, 32)]
# README: error bounds by regime, order and array size (largest side); None: order 1 refuses.
DOCUMENTED = {
    ("reram", 2): {16: 2e-4, 32: 1e-3, 64: 5e-3, 128: 3e-2},
    ("pcm", 2): {16: 1.5e-2, 32: 5e-2, 64: 0.2, 128: 0.5},
    ("spintronic", 2): {16: 0.4, 32: 0.7, 64: 0.8, 128: 0.8},
    ("reram", 1): {16: 1e-3, 32: 5e-3, 64: 3e-2, 128: None},
    ("pcm", 1): {16: 0.1, 32: None, 64: None, 128: None},
    ("spintronic", 1): {16: None, 32: None, 64: None, 128: None},
}
needs_ngspice = pytest.mark.skipif(not ng.available(), reason="ngspice is not installed")


def documented(regime, order, shape):
    size = next(s for s in (16, 32, 64, 128) if s >= max(shape))
    return DOCUMENTED[(regime, order)][size]


def random_array(shape, regime, seed):
    """Conductances uniform between 1/r_max and 1/r_min (a linear weight-to-conductance map)."""
    r_min, r_max = REGIMES[regime]
    return np.random.default_rng(seed).uniform(1.0 / r_max, 1.0 / r_min, shape)


def random_inputs(n, seed):
    """Four input vectors in volts: random 0/1, all ones, and two uniform in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.stack([(rng.random(n) < 0.5).astype(float), np.ones(n), rng.random(n), rng.random(n)])


@cache
def spice_case(shape, regime, direction):
    """(g, v, ngspice currents) of one random case, computed once per test session."""
    seed = zlib.crc32(repr((shape, regime, direction, "aam")).encode())
    g = random_array(shape, regime, seed)
    v = random_inputs(shape[0] if direction == "forward" else shape[1], seed + 1)
    return g, v, ng.simulate(g, v, direction=direction, **RESISTANCES)


def circuit_currents(g_eff, v, direction):
    return v @ g_eff if direction == "forward" else v @ g_eff.T


def test_registered_through_its_entry_point():
    spec = Registry().get("solver", "aam")
    assert (spec.plugin, spec.distribution) == ("aam", "txsim-aam")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(order=0), "order"),
        (dict(order=3), "order"),
        (dict(max_radius=0.0), "max_radius"),
        (dict(max_radius=1.5), "max_radius"),
        (dict(r_col=0.0), "r_col"),
        (dict(r_sink=-1.0), "r_sink"),
    ],
)
def test_bad_parameters_name_the_problem(params, match):
    with pytest.raises(txsim_core.ConfigError, match=match):
        txsim_core.build_model("solver", "aam", **params)


@pytest.mark.parametrize(
    ("g", "direction", "match"),
    [
        (torch.full((4, 4), 1e-5), "up", "direction"),
        (torch.full((3,), 1e-5), "forward", "shape"),
        (torch.tensor([[1e-5, -1e-6]]), "forward", "non-negative"),
        (torch.tensor([[float("inf"), 1e-6]]), "backward", "finite"),
    ],
)
def test_bad_input_is_a_config_error(g, direction, match):
    with pytest.raises(txsim_core.ConfigError, match=match):
        txsim_core.build_model("solver", "aam").effective_conductance(g, direction)


@pytest.mark.ngspice
@needs_ngspice
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_within_documented_error_of_ngspice(shape, regime, direction, order, record_property):
    g, v, spice = spice_case(shape, regime, direction)
    bound = documented(regime, order, shape)
    solver = txsim_core.build_model("solver", "aam", order=order, **RESISTANCES)
    if bound is None:
        with pytest.raises(AAMError, match="spectral radius"):
            solver.effective_conductance(torch.tensor(g), direction)
        return
    g_eff = solver.effective_conductance(torch.tensor(g), direction).numpy()
    full_scale = np.abs(spice).max()
    error = np.abs(circuit_currents(g_eff, v, direction) - spice).max() / full_scale
    ideal_error = np.abs(circuit_currents(g, v, direction) - spice).max() / full_scale
    record_property("aam_error", float(error))
    record_property("ideal_error", float(ideal_error))
    print(f"{shape} {regime} {direction} order {order}: aam {error:.1e}, ideal {ideal_error:.1e}")
    assert error <= bound
    assert error < ideal_error


def test_order_1_refuses_exactly_where_the_radius_bound_is_too_large():
    """The radius bound is a true, tight upper bound, and it alone decides."""
    from txsim_aam.models import _shared

    g = torch.tensor(random_array((2, 24, 24), "pcm", 8))
    radius = coupling_radius(g, 100.0, 100.0, 1.0, 4.6)
    # Plain power iteration of the same operator converges to the spectral radius from below.
    x = torch.rand_like(g) + 0.5
    for _ in range(200):
        ax = g * (_shared(x, 100.0, 1.0, -1, False) + _shared(x, 100.0, 4.6, -2, True))
        estimate = ax.norm(dim=(-2, -1)) / x.norm(dim=(-2, -1))
        x = ax / ax.norm(dim=(-2, -1), keepdim=True)
    assert torch.all(estimate <= radius * (1 + 1e-9))
    assert torch.all(radius <= 1.05 * estimate)
    limit = float(radius.max())
    txsim_core.build_model("solver", "aam", order=1, max_radius=limit * 1.01).effective_conductance(
        g
    )
    strict = txsim_core.build_model("solver", "aam", order=1, max_radius=limit * 0.99)
    with pytest.raises(AAMError, match="order=2"):
        strict.effective_conductance(g)


def test_order_2_is_exact_without_undriven_lines():
    """With one driven line there are no sneak paths through undriven lines: order 2 is exact."""
    g = random_array((1, 40), "spintronic", 4)
    solver = txsim_core.build_model("solver", "aam", order=2, **RESISTANCES)
    forward = solver.effective_conductance(torch.tensor(g)).numpy()
    reference = ng.nodal_effective_conductance(g, direction="forward", **RESISTANCES)
    assert np.abs(forward - reference).max() < 1e-12 * reference.max()
    g = random_array((40, 1), "spintronic", 5)
    backward = solver.effective_conductance(torch.tensor(g), "backward").numpy()
    reference = ng.nodal_effective_conductance(g, direction="backward", **RESISTANCES)
    assert np.abs(backward - reference).max() < 1e-12 * reference.max()


def test_order_2_error_vanishes_when_undriven_rows_are_ideal_grounds():
    """Order 2 leaves out only the paths through undriven rows' wires and drivers."""
    g = random_array((16, 16), "spintronic", 6)
    errors = []
    for r in (1.0, 1e-2, 1e-4):
        res = dict(r_source=0.0, r_sink=100.0, r_row=r, r_col=4.6)
        approx = txsim_core.build_model("solver", "aam", order=2, **res)
        t = approx.effective_conductance(torch.tensor(g)).numpy()
        reference = ng.nodal_effective_conductance(g, direction="forward", **res)
        errors.append(np.abs(t - reference).max() / reference.max())
    assert errors[0] > 1e-3 and errors[2] < 1e-5
    assert errors[0] > 50 * errors[1] > 50 * 50 * errors[2]


def test_order_1_error_is_second_order_in_the_resistances():
    g = random_array((16, 16), "reram", 7)
    errors = []
    for scale in (1.0, 0.1):
        res = {k: v * scale for k, v in RESISTANCES.items()}
        t = txsim_core.build_model("solver", "aam", order=1, **res).effective_conductance(
            torch.tensor(g)
        )
        reference = ng.nodal_effective_conductance(g, direction="forward", **res)
        errors.append(np.abs(t.numpy() - reference).max() / reference.max())
    assert errors[0] / errors[1] == pytest.approx(100.0, rel=0.1)


@pytest.mark.parametrize("order", [1, 2])
def test_vanishing_resistances_approach_the_cell_conductances(order):
    g = torch.tensor(random_array((8, 12), "pcm", 9))
    solver = txsim_core.build_model(
        "solver", "aam", order=order, r_source=0.0, r_sink=0.0, r_row=1e-4, r_col=1e-4
    )
    for g_eff in solver.effective_conductances(g):
        assert float((g_eff - g).abs().max() / g.max()) < 1e-5


def test_never_returns_nan_in_the_hardest_regime():
    g = torch.tensor(random_array((4, 64, 64), "spintronic", 10)) * 10  # 100-1000 Ohm cells
    solver = txsim_core.build_model("solver", "aam", order=2, r_source=1000.0, r_sink=1000.0)
    for g_eff in solver.effective_conductances(g):
        assert torch.isfinite(g_eff).all() and (g_eff >= 0).all()
    with pytest.raises(AAMError, match="diverges"):
        txsim_core.build_model("solver", "aam", order=1, max_radius=1.0).effective_conductance(g)


def test_batches_and_dtypes():
    g = torch.tensor(random_array((2, 3, 8, 16), "reram", 11))
    solver = txsim_core.build_model("solver", "aam")
    forward, backward = solver.effective_conductances(g.float())
    assert forward.shape == g.shape and forward.dtype == torch.float32
    single = solver.effective_conductance(g[1, 2], "backward")
    torch.testing.assert_close(backward[1, 2].double(), single, rtol=1e-5, atol=0.0)


def test_agrees_with_fcm_within_documented_error():
    """Where the exact solver is installed, the README's 64 x 64 figure holds against it."""
    fcm = pytest.importorskip("txsim_fcm")
    g = torch.tensor(random_array((64, 64), "reram", 12))
    exact = fcm.FCMSolver(fcm.FCMParams(**RESISTANCES)).effective_conductance(g)
    approx = txsim_core.build_model("solver", "aam", **RESISTANCES).effective_conductance(g)
    assert float((approx - exact).abs().max() / exact.max()) <= DOCUMENTED[("reram", 2)][64]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_matches_cpu():
    g = torch.tensor(random_array((4, 32, 32), "pcm", 13))
    solver = txsim_core.build_model("solver", "aam")
    cpu, gpu = solver.effective_conductances(g), solver.effective_conductances(g.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=0.0)
