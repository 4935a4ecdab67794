"""The LUT models in a crossbar layer: one data file for both slots, dtypes and devices."""

from __future__ import annotations

import pytest
import torch
from txsim_lut_device import load_device_data

import txsim_core
from txsim_core import CrossbarLinear
from txsim_core.registry import Registry


def test_mapping_and_update_share_the_range_of_the_data(make_example, tmp_path) -> None:
    path = tmp_path / "dev.csv"
    make_example.write_csv(make_example.simulate(5, 32, seed=4), path)
    data = load_device_data(path)
    registry = Registry()
    mapping = registry.build("mapping", "lut", data=str(path), cell_bits=2)
    update = registry.build("update", "lut", data=str(path))
    assert (
        (mapping.g_min, mapping.g_max) == (update.g_min, update.g_max) == (data.g_min, data.g_max)
    )
    # 2-bit cells: four levels spread evenly over the measured range
    g = mapping.encode(torch.tensor([[1.0, -1 / 3, 0.0]], dtype=torch.float64), 3)
    span = data.g_max - data.g_min
    levels = sorted({round((float(v) - data.g_min) / span * 3, 9) for v in g.flatten()})
    assert levels == [0.0, 1.0, 3.0]


def test_a_layer_takes_the_update_s_data_from_its_device_slot(make_example, tmp_path) -> None:
    """`[crossbar.update] name = "lut"` without `data` reads the file the device names."""
    path = tmp_path / "dev.csv"
    make_example.write_csv(make_example.simulate(3, 40, seed=5), path)
    config = {
        "crossbar": {
            "device": {"name": "lut", "data": str(path)},
            "update": {"name": "lut"},
        }
    }
    layer = CrossbarLinear(8, 4, config=config, seed=1)
    assert layer.crossbar.update_model.measurement.path == path.resolve()
    assert layer.crossbar.update_model.g_max == load_device_data(path).g_max
    before = layer.weight.detach().clone()
    layer.crossbar.apply_update(torch.full_like(before, 0.05))
    assert float((layer.weight.detach() - before).mean()) > 0


def test_a_layer_refuses_an_update_model_of_another_device(make_example, tmp_path) -> None:
    path = tmp_path / "other.csv"
    make_example.write_csv(make_example.simulate(2, 20, seed=6), path)
    config = {"crossbar": {"device": {"name": "lut"}, "update": {"name": "lut", "data": str(path)}}}
    with pytest.raises(txsim_core.ConfigError, match="conductance range"):
        CrossbarLinear(8, 4, config=config)


def test_float32_follows_float64(make_example) -> None:
    update = Registry().build("update", "lut", rounding="nearest", noise_scale=0.0)
    gen = torch.Generator().manual_seed(0)
    span = update.g_max - update.g_min
    g = update.g_min + span * torch.rand(2, 64, 64, generator=gen, dtype=torch.float64)
    dg = 0.2 * span * torch.randn(2, 64, 64, generator=gen, dtype=torch.float64)
    # keep requests away from the half-pulse boundaries where rounding may go either way
    n = update.pulse_count(g, dg)
    safe = (n - n.round()).abs() < 0.45
    out64 = update.step(g, dg)
    out32 = update.step(g.float(), dg.float()).double()
    assert float(((out32 - out64).abs() * safe).max()) < 1e-5 * span
    assert safe.float().mean() > 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    update = Registry().build("update", "lut", rounding="nearest", noise_scale=0.0)
    span = update.g_max - update.g_min
    gen = torch.Generator().manual_seed(1)
    g = update.g_min + span * torch.rand(4, 2, 32, 32, generator=gen, dtype=torch.float64)
    dg = 0.1 * span * torch.randn(4, 2, 32, 32, generator=gen, dtype=torch.float64)
    out = update.step(g.cuda(), dg.cuda())
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), update.step(g, dg), rtol=0, atol=1e-12 * span)
    noisy = Registry().build("update", "lut")
    cuda_gen = torch.Generator(device="cuda").manual_seed(3)
    first = noisy.step(g.cuda().float(), dg.cuda().float(), cuda_gen)
    cuda_gen.manual_seed(3)
    assert torch.equal(first, noisy.step(g.cuda().float(), dg.cuda().float(), cuda_gen))
    assert float(first.min()) >= update.g_min * (1 - 1e-6)
