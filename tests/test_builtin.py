"""The built-in ideal models do exactly what their contracts say."""

from __future__ import annotations

import pytest
import torch

import txsim_core
from txsim_core import ConfigError


def test_ideal_dac_reconstructs_input():
    dac = txsim_core.build_model("dac", "ideal", v_read=0.25)
    x = torch.linspace(-1, 1, 9).reshape(3, 3)
    volts, weights = dac(x, 8)
    assert volts.shape == (1, 3, 3) and dac.num_passes(8) == 1
    assert volts.abs().max() == pytest.approx(0.25)
    assert torch.allclose(weights[0] * volts[0], x)


def test_ideal_adc_and_solver_are_identities():
    current = torch.randn(4, 2, 3)
    assert txsim_core.build_model("adc", "ideal")(current) is current
    solver = txsim_core.build_model("solver", "ideal")
    g = torch.rand(2, 4, 4)
    assert solver.effective_conductance(g, "backward") is g
    with pytest.raises(ConfigError, match="Expected `direction` to be 'forward' or 'backward'"):
        solver.effective_conductance(g, "sideways")


@pytest.mark.parametrize(
    ("weight_bits", "cell_bits", "slices"),
    [(None, None, 1), (8, None, 1), (8, 2, 4), (9, 2, 4), (5, 3, 2), (2, 1, 1)],
)
def test_ideal_mapping_encodes_quantizes_and_slices(weight_bits, cell_bits, slices):
    mapping = txsim_core.build_model(
        "mapping", "ideal", g_min=2e-6, g_max=2e-5, cell_bits=cell_bits
    )
    w = torch.rand(2, 5, 7) * 2.4 - 1.2  # some beyond [-1, 1]: clipped
    g = mapping.encode(w, weight_bits)
    assert g.shape == (2, slices, 2, 5, 7)
    assert g.min() >= 2e-6 - 1e-12 and g.max() <= 2e-5 + 1e-12
    assert ((g[..., 0, :, :] == 2e-6) | (g[..., 1, :, :] == 2e-6)).all()  # one side of a pair off
    sig = mapping.significance(weight_bits)
    decoded = torch.einsum("s,...snm->...nm", sig, (g[..., 0, :, :] - g[..., 1, :, :]).double())
    expected = w.clamp(-1, 1).double()
    if weight_bits is not None:
        levels = 2 ** (weight_bits - 1) - 1
        expected = torch.round(expected * levels) / levels
    assert torch.allclose(decoded, expected, atol=1e-5)
    if cell_bits is not None:  # every slice holds one of 2**cell_bits levels
        steps = (g - 2e-6) / (1.8e-5 / (2**cell_bits - 1))
        assert torch.allclose(steps, steps.round(), atol=1e-3)


def test_sliced_device_needs_weight_bits():
    mapping = txsim_core.build_model("mapping", "ideal", cell_bits=2)
    with pytest.raises(
        ConfigError, match="Expected `weight_bits` to be set for a device with cell_bits=2"
    ):
        mapping.num_slices(None)


def test_ideal_update_is_exact_and_clipped():
    update = txsim_core.build_model("update", "ideal", g_min=1e-6, g_max=1e-5)
    g = torch.tensor([2e-6, 5e-6, 9e-6])
    dg = torch.tensor([-3e-6, 1e-6, 4e-6])
    assert torch.allclose(update.step(g, dg), torch.tensor([1e-6, 6e-6, 1e-5]))
    assert (update.g_min, update.g_max) == (1e-6, 1e-5)


@pytest.mark.parametrize("kind", ["mapping", "update"])
def test_inconsistent_range_is_rejected(kind):
    with pytest.raises(
        ConfigError,
        match="Expected `g_max` to be greater than `g_min`, but got g_min=1e-05, g_max=1e-06",
    ):
        txsim_core.build_model(kind, "ideal", g_min=1e-5, g_max=1e-6)


def test_models_repr_shows_only_non_defaults():
    assert (
        repr(txsim_core.build_model("mapping", "ideal", cell_bits=2)) == "IdealMapping(cell_bits=2)"
    )
