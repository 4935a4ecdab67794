"""The update phase and the refresh policy of the non-ideal matrices."""

from __future__ import annotations

import pytest
import torch

import txsim_core
from txsim_core import CrossbarLinear


def layer(config: dict, seed: int = 0) -> CrossbarLinear:
    torch.manual_seed(0)
    return CrossbarLinear(20, 12, bias=False, config={"crossbar": config}, seed=seed)


def test_update_goes_through_the_update_model(test_models):
    damped = layer({"update": {"name": "damped", "damping": 0.25}, "w_max": 1.0})
    before = damped.weight.detach().clone()
    delta = torch.full_like(before, 0.01)
    damped.crossbar.apply_update(delta)
    assert torch.allclose(damped.weight - before, 0.75 * delta, atol=1e-6)


def test_weights_stay_within_the_conductance_range():
    bounded = layer({"w_max": 0.5})
    bounded.crossbar.apply_update(torch.full_like(bounded.weight, 10.0))
    assert torch.allclose(bounded.weight, torch.full_like(bounded.weight, 0.5))
    g = bounded.crossbar.conductance
    assert g.max() <= 1e-5 * (1 + 1e-6) and g.min() >= 1e-6 * (1 - 1e-6)


def test_quantized_updates_round_stochastically_and_without_bias():
    updates = []
    for seed in range(200):
        quantized = layer({"weight_bits": 5, "w_max": 1.0}, seed=seed)
        before = quantized.weight.detach().clone()
        quantized.crossbar.apply_update(torch.full_like(before, 0.01))  # a quarter of a step (1/15)
        updates.append((quantized.weight - before).flatten())
    steps = torch.cat(updates) * 15
    assert set(torch.round(steps).unique().tolist()) <= {-1.0, 0.0, 1.0, 2.0}
    assert steps.mean().item() == pytest.approx(0.15, abs=0.02)  # unbiased: 0.01 * 15
    nearest = layer({"weight_bits": 5, "w_max": 1.0, "update_rounding": "nearest"})
    start = nearest.weight.detach().clone()
    nearest.crossbar.apply_update(torch.full_like(start, 1e-4))
    assert torch.equal(nearest.weight, start)  # far below half a step: lost


def test_dw_max_clips_the_requested_change():
    clipped = layer({"w_max": 1.0, "dw_max": 0.01})
    before = clipped.weight.detach().clone()
    delta = torch.linspace(-0.05, 0.05, before.numel()).view_as(before)
    clipped.crossbar.apply_update(delta)
    assert torch.allclose(clipped.weight - before, delta.clamp(-0.01, 0.01), atol=1e-6)


def test_update_bits_quantize_the_request_over_its_full_scale_without_bias():
    delta = torch.full((12, 20), 0.006)
    delta[0, 0] = -0.02  # the update's largest |dW| is its full scale
    changes = []
    for seed in range(20):
        coarse = layer({"w_max": 1.0, "update_bits": 2}, seed=seed)  # levels -1, 0, 1
        before = coarse.weight.detach().clone()
        coarse.crossbar.apply_update(delta)
        changes.append((coarse.weight.detach() - before).flatten()[1:])
    steps = torch.cat(changes) / 0.02
    assert set(torch.round(steps, decimals=4).unique().tolist()) == {0.0, 1.0}
    assert steps.mean().item() == pytest.approx(0.3, abs=0.03)  # unbiased; 4780 draws


def test_zero_gradient_requests_no_change(test_models):
    damped = layer({"update": "damped", "weight_bits": 6})
    before = damped.crossbar.conductance.clone()
    damped.crossbar.apply_update(torch.zeros_like(damped.weight))
    assert torch.equal(damped.crossbar.conductance, before)


@pytest.mark.parametrize("refresh_every", [1, 3])
def test_solver_refresh_policy(test_models, refresh_every):
    config = {"rows": 8, "cols": 8, "solver": {"name": "series", "refresh_every": refresh_every}}
    lazy, exact = layer(config), layer({**config, "solver": "series"})
    x = torch.randn(6, 20)
    arrays = lazy.crossbar.conductance[..., 0, 0].numel()
    solver = lazy.crossbar.solver
    for step in range(7):
        y_lazy, y_exact = lazy(x), exact(x)
        due = step % refresh_every == 0
        assert solver.solved_arrays == arrays * (
            step // refresh_every + 1
        )  # forward only: x needs no grad
        if due:
            assert torch.allclose(y_lazy, y_exact, rtol=1e-6, atol=1e-7)
        else:  # interpolated: the stored distortion applied to the new conductances
            error = float((y_lazy - y_exact).detach().norm() / y_exact.detach().norm())
            assert 0 < error < 1e-2
        delta = torch.randn_like(lazy.weight) * 0.02
        lazy.crossbar.apply_update(delta)
        exact.crossbar.apply_update(delta)


def test_only_changed_arrays_are_solved_again(test_models):
    sparse = layer({"rows": 8, "cols": 8, "solver": "series"})
    x = torch.randn(3, 20)
    sparse(x)
    solver = sparse.crossbar.solver
    solved = solver.solved_arrays
    delta = torch.zeros_like(sparse.weight)
    delta[0, 0] = 0.05  # one weight: one array, one slice, both devices of the pair
    sparse.crossbar.apply_update(delta)
    sparse(x)
    assert solver.solved_arrays - solved == 2


def test_summary_lists_layers_and_models(test_models):
    net = txsim_core.convert(
        torch.nn.Sequential(torch.nn.Linear(70, 10)),
        {
            "crossbar": {
                "weight_bits": 8,
                "input_bits": 8,
                "device": {"name": "ideal", "cell_bits": 2},
                "dac": "sign-phase",
                "solver": "series",
                "backward": {"adc": "pass-through"},
            }
        },
    )
    lines = txsim_core.summary(net).splitlines()
    assert lines[0].split()[:4] == ["Layer", "Shape", "Arrays", "Slices"]
    assert lines[2].split() == [
        "0",
        "70->10",
        "2x1",
        "of",
        "64x64",
        "4",
        "2/2",
        "8/8/fp",
        "ideal",
        "sign-phase",
        "ideal",
        "series",
        "ideal",
        "sign-phase/pass-through",
    ]
    assert "arrays=2x1 of 64x64" in repr(net)


def test_interpolation_keeps_cells_of_zero_conductance_finite(test_models):
    lazy = layer({"rows": 8, "cols": 8, "solver": {"name": "series", "refresh_every": 5}})
    array = lazy.crossbar
    with torch.no_grad():
        array.conductance[0, 0, 0, 0, 0, 0] = 0.0  # zero when the circuit is solved
    array._changed()
    array.effective("forward")
    array.update_count += 1
    array._changed()
    effective = array.effective("forward")  # interpolated from the stored solve
    assert torch.isfinite(effective).all()
    assert effective[0, 0, 0, 0, 0, 0] == array.solved_forward_eff[0, 0, 0, 0, 0, 0]
