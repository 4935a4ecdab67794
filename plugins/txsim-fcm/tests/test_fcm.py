"""Tests of the ``fcm`` solver against ngspice, a sparse nodal solve and circuit laws.

The ngspice tests run only where the ``ngspice`` executable is installed (mark ``ngspice``);
they also record how far the ideal solver (``I = V @ G``) is from the circuit, to show what the
wires do in each regime.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np
import pytest
import torch
from txsim_fcm import NetworkError
from txsim_fcm.network import port_admittance, terminate

import txsim_core
from txsim_core.registry import Registry
from txsim_core.testing import ngspice as ng

RESISTANCES = dict(r_source=100.0, r_sink=100.0, r_row=1.0, r_col=4.6)
REGIMES = {  # cell resistance ranges, Ohm
    "reram": (1e5, 1e6),
    "pcm": (1e4, 1e6),
    "spintronic": (1e3, 1e4),
}
SHAPES = [(4, 4), (8, 16), (16, 8), (32, 32)]
needs_ngspice = pytest.mark.skipif(not ng.available(), reason="ngspice is not installed")


@pytest.fixture
def registry() -> Registry:
    return Registry()


def random_array(shape, regime, seed):
    """Conductances uniform between 1/r_max and 1/r_min (a linear weight-to-conductance map)."""
    r_min, r_max = REGIMES[regime]
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0 / r_max, 1.0 / r_min, shape)


def random_inputs(n, seed):
    """Four input vectors in volts: random 0/1, all ones, and two uniform in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.stack([(rng.random(n) < 0.5).astype(float), np.ones(n), rng.random(n), rng.random(n)])


@cache
def spice_case(shape, regime, direction):
    """(g, v, ngspice currents) of one random case, computed once per test session."""
    seed = zlib.crc32(repr((shape, regime, direction)).encode())
    g = random_array(shape, regime, seed)
    v = random_inputs(shape[0] if direction == "forward" else shape[1], seed + 1)
    currents = ng.simulate(g, v, direction=direction, **RESISTANCES)
    return g, v, currents


def circuit_currents(g_eff, v, direction):
    return v @ g_eff if direction == "forward" else v @ g_eff.T


def test_registered_through_its_entry_point(registry):
    spec = registry.get("solver", "fcm")
    assert (spec.plugin, spec.distribution) == ("fcm", "txsim-fcm")
    solver = registry.build("solver", "fcm")
    assert (solver.params.r_row, solver.params.r_col) == (1.0, 4.6)
    assert not solver.is_exact


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(r_row=0.0), "r_row"),
        (dict(r_col=-1.0), "r_col"),
        (dict(r_source=-5.0), "r_source"),
        (dict(workspace_bytes=10), "workspace_bytes"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, match):
    with pytest.raises(txsim_core.ConfigError, match=match):
        registry.build("solver", "fcm", **params)


@pytest.mark.parametrize(
    ("g", "direction", "match"),
    [
        (torch.full((4, 4), 1e-5), "sideways", "direction"),
        (torch.full((4,), 1e-5), "forward", "shape"),
        (torch.full((2, 4, 0), 1e-5), "forward", "shape"),
        (torch.tensor([[1e-5, -1e-6]]), "forward", "non-negative"),
        (torch.tensor([[1e-5, float("nan")]]), "backward", "finite"),
        (torch.ones(3, 3, dtype=torch.int64), "forward", "floating-point"),
    ],
)
def test_bad_input_is_a_config_error(g, direction, match):
    solver = txsim_core.build_model("solver", "fcm")
    with pytest.raises(txsim_core.ConfigError, match=match):
        solver.effective_conductance(g, direction)


@pytest.mark.ngspice
@needs_ngspice
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_ngspice(shape, regime, direction, record_property):
    g, v, spice = spice_case(shape, regime, direction)
    solver = txsim_core.build_model("solver", "fcm", **RESISTANCES)
    g_eff = solver.effective_conductance(torch.tensor(g), direction).numpy()
    full_scale = np.abs(spice).max()
    error = np.abs(circuit_currents(g_eff, v, direction) - spice).max() / full_scale
    ideal_error = np.abs(circuit_currents(g, v, direction) - spice).max() / full_scale
    record_property("fcm_error", float(error))
    record_property("ideal_error", float(ideal_error))
    print(f"{shape} {regime} {direction}: fcm {error:.1e}, ideal {ideal_error:.1e} of full scale")
    assert error < 1e-6
    assert ideal_error > 1e3 * error  # the wires matter and fcm captures them


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("regime", list(REGIMES))
def test_matches_sparse_nodal_solve_on_64x64(regime, direction):
    g = random_array((64, 64), regime, 7)
    reference = ng.nodal_effective_conductance(g, direction=direction, **RESISTANCES)
    solver = txsim_core.build_model("solver", "fcm", **RESISTANCES)
    g_eff = solver.effective_conductance(torch.tensor(g), direction).numpy()
    assert np.abs(g_eff - reference).max() < 1e-9 * np.abs(reference).max()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (5, 7), (33, 20), (3, 64)])
def test_any_shape_matches_sparse_nodal_solve(shape):
    """Sides that are not powers of two are padded internally with open cells."""
    g = random_array(shape, "pcm", 3)
    g[-1, -1] = 0.0 if g.size > 1 else g[-1, -1]  # an open cell
    resistances = dict(r_source=20.0, r_sink=0.0, r_row=2.0, r_col=3.0)
    solver = txsim_core.build_model("solver", "fcm", **resistances)
    forward, backward = solver.effective_conductances(torch.tensor(g))
    for direction, g_eff in (("forward", forward), ("backward", backward)):
        reference = ng.nodal_effective_conductance(g, direction=direction, **resistances)
        assert g_eff.shape == g.shape
        assert np.abs(g_eff.numpy() - reference).max() < 1e-9 * np.abs(reference).max()


def test_vanishing_resistances_approach_the_cell_conductances():
    g = torch.tensor(random_array((16, 16), "reram", 5))
    deviations = []
    for r in (1e-2, 1e-3, 1e-4):
        solver = txsim_core.build_model("solver", "fcm", r_source=0.0, r_sink=0.0, r_row=r, r_col=r)
        for g_eff in solver.effective_conductances(g):
            deviations.append(float((g_eff - g).abs().max() / g.max()))
    assert deviations[-1] < 1e-6
    # The deviation is first order in the wire resistance: 10x smaller wires, 10x closer.
    assert deviations[0] / deviations[2] == pytest.approx(10.0, rel=0.01)
    assert deviations[2] / deviations[4] == pytest.approx(10.0, rel=0.01)


def test_reciprocity_with_equal_terminals():
    """With r_source == r_sink every terminal sees the same resistance in both directions, so
    the transfer from row k to column j equals the transfer from column j to row k: the two
    terminations of one network agree (which lets the model terminate once for both)."""
    g = torch.tensor(random_array((16, 8), "spintronic", 11))
    y = port_admittance(g.unsqueeze(0), 1.0, 4.6)  # the wire network of this array
    for r_source, r_sink, equal in ((50.0, 50.0, True), (50.0, 10.0, False)):
        forward = terminate(y, 16, r_source, r_sink, "forward")
        backward = terminate(y, 16, r_source, r_sink, "backward")
        assert torch.allclose(forward, backward, rtol=1e-10, atol=0.0) == equal
    solver = txsim_core.build_model("solver", "fcm", r_source=50.0, r_sink=50.0)
    forward, backward = solver.effective_conductances(g)
    assert torch.equal(forward, backward) and forward.data_ptr() != backward.data_ptr()


def test_batches_dtypes_and_chunks_agree_with_single_arrays():
    g = torch.tensor(random_array((2 * 3 * 2, 8, 16), "pcm", 2)).reshape(2, 3, 2, 8, 16)
    solver = txsim_core.build_model("solver", "fcm")
    batched = solver.effective_conductance(g, "backward")
    assert batched.shape == g.shape and batched.dtype == torch.float64
    single = solver.effective_conductance(g[1, 2, 0], "backward")
    torch.testing.assert_close(batched[1, 2, 0], single, rtol=1e-12, atol=0.0)
    chunked = txsim_core.build_model(
        "solver", "fcm", workspace_bytes=2**20, keep_workspace=False
    ).effective_conductance(g, "backward")
    torch.testing.assert_close(chunked, batched, rtol=1e-12, atol=0.0)
    as_float32 = solver.effective_conductance(g.float(), "backward")
    assert as_float32.dtype == torch.float32
    torch.testing.assert_close(as_float32, batched.float(), rtol=1e-5, atol=0.0)


def test_cache_sized_groups_of_arrays_give_the_same_admittance(monkeypatch):
    """On the CPU a batch is solved in groups of arrays; the grouping changes nothing."""
    from txsim_fcm import network

    g = torch.tensor(random_array((5, 16, 8), "spintronic", 13))
    whole = network.port_admittance(g, 1.0, 4.6, keep_workspace=False)
    monkeypatch.setattr(network, "CPU_CHUNK_SITES", 2 * 16 * 8 // torch.get_num_threads())
    grouped = network.port_admittance(g, 1.0, 4.6, keep_workspace=False)
    torch.testing.assert_close(grouped, whole, rtol=1e-13, atol=0.0)
    single = network.port_admittance(g[3:4], 1.0, 4.6, keep_workspace=False)
    torch.testing.assert_close(grouped[3:4], single, rtol=1e-13, atol=0.0)


def test_replayed_solves_follow_new_arrays_and_resistances(monkeypatch):
    """The first group's solve is recorded and replayed for the other groups and later calls."""
    from txsim_fcm import network

    network.clear_workspace()
    monkeypatch.setattr(network, "CPU_CHUNK_SITES", 2 * 16 * 8 // torch.get_num_threads())
    for resistances in (RESISTANCES, dict(r_source=20.0, r_sink=5.0, r_row=2.0, r_col=3.0)):
        solver = txsim_core.build_model("solver", "fcm", **resistances)
        for seed, regime in enumerate(REGIMES):  # groups of 2 arrays, then 1: replays and records
            g = random_array((5, 16, 8), regime, 20 + seed)
            g_eff = solver.effective_conductance(torch.tensor(g), "forward").numpy()
            for array, result in zip(g, g_eff, strict=True):
                reference = ng.nodal_effective_conductance(
                    array, direction="forward", **resistances
                )
                assert np.abs(result - reference).max() < 1e-9 * np.abs(reference).max()
    assert len(network._PROGRAMS) == 4  # (2 and 1 arrays) x (2 wire resistances)


def test_reuse_of_the_last_solve_follows_the_tensor_and_its_version():
    g = torch.tensor(random_array((3, 8, 8), "pcm", 12))
    fresh = txsim_core.build_model("solver", "fcm", reuse_last=False)
    solver = txsim_core.build_model("solver", "fcm")
    solver.effective_conductance(g, "forward")
    torch.testing.assert_close(
        solver.effective_conductance(g, "backward"), fresh.effective_conductance(g, "backward")
    )
    g.mul_(0.5)  # an in-place change must not be served from the reused solve
    torch.testing.assert_close(
        solver.effective_conductance(g, "backward"), fresh.effective_conductance(g, "backward")
    )
    other = g.clone()
    torch.testing.assert_close(
        solver.effective_conductance(other, "forward"), fresh.effective_conductance(g, "forward")
    )
    with torch.inference_mode():  # inference tensors have no version counter: no reuse
        frozen = g.clone()
        torch.testing.assert_close(
            solver.effective_conductance(frozen, "forward"),
            fresh.effective_conductance(g, "forward"),
        )


def test_a_reused_solve_keeps_its_terminations_and_hands_out_copies(monkeypatch):
    """Forward, then backward on the same tensor (a layer's two directions): one network solve
    and, with equal terminals, one termination; every result is the caller's own tensor."""
    from txsim_fcm import models

    g = torch.tensor(random_array((3, 8, 8), "reram", 13))
    calls = []
    real = models.terminate
    monkeypatch.setattr(models, "terminate", lambda *a: calls.append(a[-1]) or real(*a))
    solver = txsim_core.build_model("solver", "fcm")
    forward = solver.effective_conductance(g, "forward")
    expected = forward.clone()
    forward.zero_()  # the caller's tensor: the kept result must not change with it
    backward = solver.effective_conductance(g, "backward")
    again = solver.effective_conductance(g, "forward")
    assert calls == ["forward"]
    assert torch.equal(backward, expected) and torch.equal(again, expected)
    assert backward.data_ptr() != again.data_ptr()
    unequal = txsim_core.build_model("solver", "fcm", r_source=50.0, r_sink=10.0)
    unequal.effective_conductances(g)
    unequal.effective_conductance(g, "backward")
    assert calls == ["forward", "forward", "backward"]


def test_open_and_empty_arrays():
    solver = txsim_core.build_model("solver", "fcm")
    zeros = solver.effective_conductance(torch.zeros(3, 8, 8))
    assert torch.equal(zeros, torch.zeros(3, 8, 8))
    empty = solver.effective_conductance(torch.zeros(0, 4, 4))
    assert empty.shape == (0, 4, 4)


def test_network_error_is_raised_for_a_broken_system():
    """The factorisation check itself (input validation normally stops such values first)."""
    from txsim_fcm.network import port_admittance

    g = torch.full((1, 4, 4), 1e-5, dtype=torch.float64)
    g[0, 1, 1] = -1.0  # a negative cell makes the nodal matrix indefinite
    with pytest.raises(NetworkError, match="positive definite"):
        port_admittance(g, 1.0, 4.6, keep_workspace=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_matches_cpu():
    g = torch.tensor(random_array((6, 32, 32), "pcm", 4))
    solver = txsim_core.build_model("solver", "fcm")
    cpu = solver.effective_conductances(g)
    gpu = solver.effective_conductances(g.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=0.0)


@pytest.mark.ngspice
@needs_ngspice
def test_ngspice_helper_agrees_with_the_nodal_solve():
    """The two references agree with each other (guards the helper itself)."""
    g = random_array((4, 6), "spintronic", 9)
    v = random_inputs(6, 10)
    spice = ng.simulate(g, v, direction="backward", **RESISTANCES)
    nodal = ng.nodal_currents(g, v, direction="backward", **RESISTANCES)
    assert np.abs(spice - nodal).max() < 1e-9 * np.abs(nodal).max()


@pytest.mark.parametrize("changed_rows", [slice(None), slice(0, 4)])
def test_a_layer_solves_its_network_once_per_update_for_both_directions(monkeypatch, changed_rows):
    """Forward and backward effective conductances come from one network solve, whether every
    array changed or only some (those are then the only ones solved)."""
    import txsim_fcm.models

    solved = []
    real = txsim_fcm.models.port_admittance

    def counting(g, *args, **kwargs):
        solved.append(g.shape[0])
        return real(g, *args, **kwargs)

    monkeypatch.setattr(txsim_fcm.models, "port_admittance", counting)
    config = {"crossbar": {"rows": 8, "cols": 8, "solver": "fcm", "w_max": 1.0}}
    layer = txsim_core.CrossbarLinear(20, 12, bias=False, config=config)
    x = torch.randn(5, 20, requires_grad=True)
    layer(x).sum().backward()
    assert solved == [3 * 2 * 1 * 2]  # 3 x 2 tiles, 1 slice, a differential pair
    solved.clear()
    delta = torch.zeros_like(layer.weight)
    delta[changed_rows] = 0.01  # output rows 0-3 live in the first column tile
    layer.crossbar.apply_update(delta)
    layer(x).sum().backward()
    assert solved == [(3 * 2 if changed_rows == slice(None) else 3) * 2]
