"""Tests of the template plugin; they run against the installed distribution."""

from __future__ import annotations

import pytest
import torch

import txsim_core
from txsim_core.registry import Registry


@pytest.fixture
def registry() -> Registry:
    return Registry()  # loads installed plugins through their entry points


def test_registered_through_its_entry_point(registry):
    spec = registry.get("mapping", "template")
    assert (spec.plugin, spec.distribution) == ("template", "txsim-template")


def test_conductance_range_follows_resistances(registry):
    device = registry.build("mapping", "template", r_on=50e3, r_off=500e3)
    assert (device.g_min, device.g_max) == pytest.approx((2e-6, 2e-5))
    g = device.encode(torch.tensor([[1.0, -0.5]]), None)
    assert g[0, 0, 0, 0].item() == pytest.approx(2e-5)
    assert g[0, 1, 0, 1].item() == pytest.approx(1.1e-5)


def test_bad_parameters_name_the_problem(registry):
    with pytest.raises(txsim_core.ConfigError, match="Expected `r_off` to be greater than `r_on`"):
        registry.build("mapping", "template", r_on=1e6, r_off=1e5)
