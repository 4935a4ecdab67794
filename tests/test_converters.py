"""The built-in ``uniform`` ADC and ``multibit`` DAC, and ADC full-scale calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import polynomial as npoly

import txsim_core
from txsim_core import ConfigError, calibration
from txsim_core.builtin.converters import MultiBitDAC, UniformADC
from txsim_core.calibration import FullScale, calibrating, percentile, signed_codes_


def uniform(**params) -> UniformADC:
    adc = txsim_core.build_model("adc", "uniform", **params)
    assert isinstance(adc, UniformADC)
    return adc


def multibit(**params) -> MultiBitDAC:
    dac = txsim_core.build_model("dac", "multibit", **params)
    assert isinstance(dac, MultiBitDAC)
    return dac


def reference_quantizer(current: np.ndarray, full_scale: np.ndarray, bits: int) -> np.ndarray:
    """Sign-magnitude rounding (ties away from zero) with saturation, written with numpy."""
    levels = 2 ** (bits - 1) - 1
    lsb = full_scale / levels
    x = current / lsb
    code = np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -levels, levels)
    return code * lsb


def test_converters_are_registered_as_builtins():
    names = {(s.kind.value, s.name): s for s in txsim_core.list_models()}
    for key in [("adc", "uniform"), ("dac", "multibit")]:
        assert names[key].plugin == "txsim" and names[key].distribution == "txsim"


# ------------------------------------------------------------------------------------------------
# uniform ADC


@pytest.mark.parametrize("bits", [2, 3, 8, 12])
def test_uniform_adc_rounds_within_half_lsb_and_saturates(bits):
    fs = 5e-5
    adc = uniform(bits=bits, full_scale=fs)
    levels = 2 ** (bits - 1) - 1
    lsb = fs / levels
    current = torch.linspace(-1.5 * fs, 1.5 * fs, 20001, dtype=torch.float64).view(-1, 1, 1)
    out = adc(current)
    inside = current.abs() <= fs
    assert (out - current)[inside].abs().max() <= lsb / 2 * (1 + 1e-9)
    assert torch.equal(out[current > fs], torch.full_like(out[current > fs], fs))
    assert torch.equal(out[current < -fs], torch.full_like(out[current < -fs], -fs))
    codes = out / lsb
    assert torch.allclose(codes, codes.round(), atol=1e-9)
    assert len(torch.unique(codes.round())) == 2**bits - 1  # sign-magnitude: every code is used
    assert (out.diff(dim=0) >= 0).all()  # monotonic
    expected = reference_quantizer(current.numpy(), np.array(fs), bits)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12 * fs)


def test_uniform_adc_ties_round_away_from_zero_and_zero_is_exact():
    adc = uniform(bits=4, full_scale=7.0)  # LSB = 1 A
    current = torch.tensor([-2.5, -0.5, -0.49, 0.0, 0.49, 0.5, 2.5], dtype=torch.float64)
    out = adc(current.view(-1, 1, 1)).flatten()
    assert out.tolist() == [-3.0, -1.0, 0.0, 0.0, 0.0, 1.0, 3.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_signed_codes_round_half_away_saturate_keep_the_sign_bit_and_pass_nan(dtype, monkeypatch):
    """Against the formula written elementwise in Python, across chunk boundaries and on a
    strided input: ``sign bit * min(floor(|x| + 1/2), L)`` in the dtype, NaN to NaN."""
    monkeypatch.setattr(calibration, "CODE_CHUNK", 7)  # several chunks and a short last one
    values = [0.0, -0.0, 0.49, -0.49, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 6.5, -6.5, 7.4, -8.0]
    values += [1e30, -1e30, float("inf"), float("-inf"), float("nan"), 1e-40, -1e-40]
    x = torch.tensor(values, dtype=torch.float64).to(dtype)
    levels = 7
    expected = []
    for v in x.tolist():  # exact: the values of the dtype, rounded to it after + 1/2
        if v != v:
            expected.append(v)
            continue
        half = torch.tensor(abs(v), dtype=dtype) + 0.5
        magnitude = min(float(torch.floor(half)), levels)
        expected.append(-magnitude if torch.signbit(torch.tensor(v)) else magnitude)
    want = torch.tensor(expected, dtype=torch.float64).to(dtype)
    strided = torch.stack((x, torch.zeros_like(x)), dim=1)[:, 0]
    for given in (x.clone(), strided):
        got = signed_codes_(given, levels)
        assert got is given
        assert torch.equal(got.isnan(), want.isnan())
        number = ~want.isnan()
        assert torch.equal(torch.signbit(got[number]), torch.signbit(want[number]))  # -0.0 too
        assert torch.equal(got.nan_to_num(), want.nan_to_num())


def test_uniform_adc_zero_current_is_silent_unless_the_inl_or_a_percentile_moves_it():
    assert uniform(bits=6).zero_current_is_silent()
    assert uniform(bits=6, inl=[0.49, 2.0]).zero_current_is_silent()  # 0 A: code 0
    assert not uniform(bits=6, inl=[0.5]).zero_current_is_silent()  # 0 A: code 1
    adc = uniform(bits=6, calibration="percentile", calibration_batches=1)
    assert not adc.zero_current_is_silent()  # zeros would move the percentile
    adc(torch.randn(4, 1, 3))
    assert adc.zero_current_is_silent()  # frozen after its one calibration minibatch


def test_signed_codes_name_the_dtypes_they_take():
    with pytest.raises(ConfigError, match=r"Expected values in one of .*float32.*torch.int32"):
        signed_codes_(torch.zeros(3, dtype=torch.int32), 7)


def test_uniform_adc_inl_polynomial_moves_the_transitions():
    """The code changes where x + INL(x / L) crosses m - 1/2 (x = I / LSB), for every m."""
    coefficients = (0.3, 0.4, -0.9, 0.5)  # offset, gain error, bow, S-shape: in LSB
    bits, fs = 6, 31.0  # LSB = 1 A
    levels = 31
    adc = uniform(bits=bits, full_scale=fs, inl=list(coefficients))
    step = 1e-4
    x = torch.arange(-34.0, 34.0, step, dtype=torch.float64)
    codes = adc(x.view(-1, 1, 1)).flatten().round().long()
    changes = torch.nonzero(codes.diff()).flatten()
    xn = x.numpy()
    for i in changes.tolist():
        a, b = codes[i].item(), codes[i + 1].item()
        assert b == a + 1  # monotonic, no missing code for this mild INL
        threshold = (a + b) / 2  # m - 1/2 between codes a and b
        left = xn[i] + npoly.polyval(xn[i] / levels, coefficients)
        right = xn[i + 1] + npoly.polyval(xn[i + 1] / levels, coefficients)
        assert left < threshold + 1e-12 and right >= threshold - 1e-12
    assert len(changes) == 2 * levels
    # the end points saturate at +-L whatever the INL
    assert codes[0] == -levels and codes[-1] == levels


def test_uniform_adc_keeps_dtype_and_shape():
    adc = uniform(bits=8, full_scale=1e-5)
    current = torch.randn(3, 4, 5) * 1e-5
    out = adc(current)
    assert out.shape == current.shape and out.dtype == torch.float32


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bits": 1}, "Expected `bits` to be an integer in [2, 24], but got 1"),
        ({"bits": 0}, "Expected `bits` to be an integer in [2, 24], but got 0"),
        ({"full_scale": 0.0}, "Expected `full_scale` to be a number > 0 or None, but got 0.0"),
        ({"full_scale": -1e-6}, "Expected `full_scale` to be a number > 0 or None"),
        ({"percentile": 0.0}, "Expected `percentile` to be a number in (0, 100], but got 0.0"),
        ({"percentile": 101}, "Expected `percentile` to be a number in (0, 100]"),
        ({"calibration": "mean"}, "Expected `calibration` to be one of 'max', 'percentile'"),
        ({"calibration_scope": "tile"}, "Expected `calibration_scope` to be one of 'layer'"),
        ({"calibration_batches": -1}, "Expected `calibration_batches` to be an integer >= 0"),
        ({"inl": ["a"]}, "Expected `inl` to be a list of numbers, but got ['a']"),
        ({"inl": [float("nan")]}, "Expected `inl` to be a list of numbers"),
    ],
)
def test_uniform_adc_bad_parameters(params, message):
    with pytest.raises(ConfigError, match="adc model 'uniform'") as info:
        uniform(**params)
    assert message in str(info.value)


def test_uniform_adc_rejects_wrong_current_shape():
    with pytest.raises(ConfigError, match=r"Expected currents of shape \(B, units, channels\)"):
        uniform(full_scale=1.0)(torch.zeros(3, 4))


# ------------------------------------------------------------------------------------------------
# calibration


def batches(seed: int, count: int, shape=(16, 3, 8), scales=(1.0, 2.0, 0.5)):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(shape, generator=gen, dtype=torch.float64)
        * torch.tensor(scales, dtype=torch.float64).view(1, -1, 1)
        * 1e-5
        * (1 + i)
        for i in range(count)
    ]


def test_calibrated_max_per_layer_follows_first_k_training_batches_then_freezes():
    adc = uniform(bits=8, calibration="max", calibration_batches=3)
    adc.setup(3, 8, torch.Generator())
    adc.train()
    data = batches(0, 5)
    for i, current in enumerate(data):
        adc(current)
        seen = data[: min(i + 1, 3)]
        expected = max(np.abs(c.numpy()).max() for c in seen)
        assert adc.full_scale.shape == (1,)
        assert adc.full_scale.item() == pytest.approx(expected, rel=1e-12)
    assert adc.scale.seen_batches == 3 and int(adc.scale.batches) == 3
    # frozen: the later, larger currents saturate at the calibrated full scale
    out = adc(data[4])
    fs = adc.full_scale.item()
    assert out.abs().max().item() == pytest.approx(fs) and data[4].abs().max() > fs


def test_calibrated_percentile_per_array_is_mean_of_batch_percentiles():
    q = 90.0
    k = 10
    adc = uniform(
        bits=8,
        calibration="percentile",
        percentile=q,
        calibration_scope="array",
        calibration_batches=k,
    )
    adc.setup(3, 8, torch.Generator())
    adc.train()
    data = batches(1, 12)
    for current in data:
        adc(current)
    per_batch = np.stack(
        [
            np.percentile(np.abs(c.numpy()).transpose(1, 0, 2).reshape(3, -1), q, axis=1)
            for c in data[:k]
        ]
    )
    np.testing.assert_allclose(adc.full_scale.numpy(), per_batch.mean(axis=0), rtol=1e-12)
    assert adc.full_scale.shape == (3,)
    # every unit converts with its own full scale
    out = adc(data[0])
    expected = reference_quantizer(
        data[0].numpy(), adc.full_scale.numpy().reshape(1, 3, 1), adc.params.bits
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-18)


def test_by_default_the_full_scale_follows_every_training_minibatch_and_not_evaluation():
    adc = uniform(bits=8, calibration="max")
    adc.train()
    data = [c * (1 + i) for i, c in enumerate(batches(2, 30))]  # growing currents
    for current in data:
        adc(current)
    largest = max(c.abs().max().item() for c in data)
    assert adc.full_scale.item() == pytest.approx(largest)
    adc.eval()
    adc(data[-1] * 10)
    assert adc.full_scale.item() == pytest.approx(largest)


def test_calibrated_max_per_array_without_setup_sizes_itself():
    adc = uniform(bits=8, calibration_scope="array", calibration_batches=2)
    adc.train()
    data = batches(2, 3)
    for current in data:
        adc(current)
    expected = np.max([np.abs(c.numpy()).max(axis=(0, 2)) for c in data[:2]], axis=0)
    np.testing.assert_allclose(adc.full_scale.numpy(), expected, rtol=1e-12)
    with pytest.raises(ConfigError, match="Expected currents of 3 units"):
        adc(torch.zeros(2, 4, 8))


def test_first_call_calibrates_when_no_data_was_seen_even_in_eval_mode():
    adc = uniform(bits=8, calibration_batches=5)
    adc.eval()
    data = batches(3, 3)
    adc(data[0])
    first = np.abs(data[0].numpy()).max()
    assert adc.full_scale.item() == pytest.approx(first)
    adc(data[2])  # eval mode: no further calibration
    assert adc.full_scale.item() == pytest.approx(first)
    adc.train()  # training mode: the remaining batches of the K = 5 calibrate
    adc(data[2])
    assert adc.full_scale.item() == pytest.approx(np.abs(data[2].numpy()).max())


def test_zero_batches_means_first_call_only():
    adc = uniform(bits=8, calibration_batches=0)
    adc.train()
    data = batches(4, 2)
    adc(data[0])
    adc(data[1])
    assert adc.full_scale.item() == pytest.approx(np.abs(data[0].numpy()).max())


def test_calibrating_context_restarts_updates_in_any_mode_and_freezes_after():
    model = torch.nn.ModuleDict(
        {"fwd": uniform(bits=8, calibration_batches=1), "bwd": uniform(bits=6, full_scale=1.0)}
    )
    model.train()
    data = batches(5, 4)
    model["fwd"](data[3])  # the one training-mode batch
    model.eval()
    with calibrating(model) as same:
        assert same is model
        assert model["fwd"].scale.calibrating
        for current in data[:2]:
            model["fwd"](current)
            model["bwd"](current)
    assert not model["fwd"].scale.calibrating
    expected = max(np.abs(c.numpy()).max() for c in data[:2])  # data[3] was forgotten
    assert model["fwd"].full_scale.item() == pytest.approx(expected)
    assert model["bwd"].full_scale.item() == 1.0  # a fixed full scale is left alone
    model.train()
    model["fwd"](data[3])  # K = 1 already reached: frozen
    assert model["fwd"].full_scale.item() == pytest.approx(expected)
    with calibrating(model, reset=False):
        model["fwd"](data[3])
    assert model["fwd"].full_scale.item() == pytest.approx(np.abs(data[3].numpy()).max())


def test_calibrated_full_scale_is_saved_and_restored():
    adc = uniform(bits=8, calibration="percentile", calibration_scope="array")
    adc.setup(3, 8, torch.Generator())
    adc.train()
    data = batches(6, 2)
    for current in data:
        adc(current)
    state = adc.state_dict()
    assert set(state) == {"scale.value", "scale.batches"}
    fresh = uniform(bits=8, calibration="percentile", calibration_scope="array")
    fresh.load_state_dict(state)  # not set up yet: the buffer adopts the stored shape
    assert torch.equal(fresh.full_scale, adc.full_scale) and fresh.scale.seen_batches == 2
    fresh.setup(3, 8, torch.Generator())  # keeps the loaded state
    assert torch.equal(fresh.full_scale, adc.full_scale)
    fresh.eval()
    assert torch.equal(fresh(data[0]), adc.eval()(data[0]))


def test_zero_currents_calibrate_to_zero_and_convert_to_zero():
    adc = uniform(bits=8)
    out = adc(torch.zeros(4, 2, 3))
    assert adc.full_scale.item() == 0.0 and torch.equal(out, torch.zeros(4, 2, 3))
    assert torch.isfinite(adc(torch.ones(1, 2, 3))).all()


def test_fixed_full_scale_never_calibrates():
    scale = FullScale(txsim_core.get_spec("adc", "uniform").params(full_scale=2e-5))
    scale.train()
    with calibrating(scale):
        scale(torch.full((2, 1, 1), 1.0))
    assert scale.value.item() == 2e-5 and not scale.wants_data()


@pytest.mark.parametrize("q", [0.0, 0.1, 37.5, 50.0, 99.9, 100.0])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_percentile_matches_numpy(q, n):
    values = torch.randn(3, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    np.testing.assert_allclose(
        percentile(values, q).numpy(), np.percentile(values.numpy(), q, axis=-1), rtol=1e-12
    )


# ------------------------------------------------------------------------------------------------
# multibit DAC


@pytest.mark.parametrize("polarity", ["unipolar", "bipolar"])
@pytest.mark.parametrize("bits", [None, 2, 5, 8])
def test_multibit_dac_without_inl_reconstructs_its_input(polarity, bits):
    dac = multibit(polarity=polarity, v_max=0.8)
    x = torch.randn(4, 33, dtype=torch.float64).clamp(-1, 1)
    if bits is not None:
        top = 2 ** (bits - 1) - 1
        x = torch.round(x * top) / top
    volts, weights = dac(x, bits)
    assert volts.shape == (dac.num_passes(bits), 4, 33) and weights.shape == (volts.shape[0],)
    if polarity == "unipolar":
        assert volts.min() >= 0 and volts.max() <= 0.8
        assert ((volts[0] == 0) | (volts[1] == 0)).all()  # one phase per row
    else:
        assert volts.abs().max() <= 0.8
    reconstructed = torch.einsum("p,p...->...", weights, volts)
    assert torch.allclose(reconstructed, x, rtol=0, atol=1e-15)


@pytest.mark.parametrize("polarity", ["unipolar", "bipolar"])
def test_multibit_dac_rounds_finer_inputs_to_its_resolution(polarity):
    dac = multibit(polarity=polarity, bits=3)
    top = 3 if polarity == "bipolar" else 7
    x = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    volts, weights = dac(x, 12)
    seen = torch.einsum("p,p...->...", weights, volts).numpy()
    xn = x.numpy()
    expected = np.sign(xn) * np.floor(np.abs(xn) * top + 0.5) / top
    np.testing.assert_allclose(seen, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("polarity", "bits"), [("unipolar", 4), ("bipolar", 5)])
def test_multibit_dac_reproduces_inl_polynomial(polarity, bits):
    coefficients = (0.2, -0.5, 1.5, -0.7)
    dac = multibit(polarity=polarity, bits=bits, v_max=0.5, inl=list(coefficients))
    top = 2**bits - 1 if polarity == "unipolar" else 2 ** (bits - 1) - 1
    lsb = 0.5 / top
    codes = np.arange(-top if polarity == "bipolar" else 0, top + 1)
    x = torch.tensor(np.concatenate([codes, -codes]) / top, dtype=torch.float64)
    volts, _ = dac(x, None)
    expected = 0.5 * codes / top + lsb * npoly.polyval(codes / top, coefficients)
    np.testing.assert_allclose(volts[0].numpy()[: len(codes)], expected, rtol=1e-12, atol=1e-15)
    if polarity == "unipolar":  # negative inputs: the same levels in the second pass
        np.testing.assert_allclose(volts[1].numpy()[len(codes) :], expected, rtol=1e-12)


def write_table(path, header, rows, comment=True):
    lines = ["# measured DAC curve"] if comment else []
    lines.append(header)
    lines += [f"{a},{b}" for a, b in rows]
    path.write_text("\n".join(lines) + "\n\n")
    return str(path)


@pytest.mark.parametrize("column", ["voltage", "inl_lsb"])
def test_multibit_dac_uses_a_measured_table(tmp_path, column):
    bits, v_max = 3, 1.2
    rng = np.random.default_rng(7)
    codes = np.arange(0, 8)
    values = (
        np.sort(codes * v_max / 7 + rng.normal(0, 0.01, 8))
        if column == "voltage"
        else rng.normal(0, 0.3, 8)
    )
    table = write_table(tmp_path / "curve.csv", f"code,{column}", zip(codes, values, strict=True))
    dac = multibit(bits=bits, v_max=v_max, table=table)
    x = torch.tensor(codes / 7, dtype=torch.float64)
    volts, _ = dac(x, None)
    expected = values if column == "voltage" else codes * v_max / 7 + values * v_max / 7
    np.testing.assert_allclose(volts[0].numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(volts[1].numpy(), np.full(8, expected[0]), rtol=1e-12)  # code 0


def test_multibit_dac_bipolar_table_covers_negative_codes(tmp_path):
    codes = np.arange(-3, 4)
    volts_table = 0.1 * codes + 0.003 * codes**3
    table = write_table(tmp_path / "b.csv", "Code, Voltage", zip(codes, volts_table, strict=True))
    dac = multibit(polarity="bipolar", bits=3, v_max=0.3, table=table)
    volts, weights = dac(torch.tensor(codes / 3.0), None)
    np.testing.assert_allclose(volts[0].numpy(), volts_table, rtol=1e-12)
    assert weights.tolist() == pytest.approx([1 / 0.3])


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (
            "code,volts",
            [(0, 0.0)],
            "Expected the header of `table` file .* to be 'code,voltage' "
            "or 'code,inl_lsb', but got 'code,volts'",
        ),
        ("code,voltage,extra", [(0, 0.0)], "to be 'code,voltage' or 'code,inl_lsb'"),
        (
            "code,voltage",
            [(0, 0.0), (2, 0.2), (1, 0.1), (3, 0.3)],
            "Expected strictly increasing codes in `table` file .*, but got 1 after 2 on line",
        ),
        (
            "code,voltage",
            [(0, 0.0), (1, 0.1), (1, 0.1), (3, 0.3)],
            "Expected strictly increasing codes",
        ),
        (
            "code,voltage",
            [(0, 0.0), (1, 0.1), (2, 0.2)],
            r"to list every code from 0 to 3 of a 2-bit unipolar DAC once, but got 3 codes",
        ),
        ("code,voltage", [(0, 0.0), (1, "0.1,7"), (2, 0.2), (3, 0.3)], "Expected 2 columns on"),
        ("code,voltage", [(0, 0.0), (0.5, 0.1), (2, 0.2), (3, 0.3)], "Expected integer codes"),
        ("code,voltage", [(0, 0.0), (1, "x"), (2, 0.2), (3, 0.3)], "Expected numbers in"),
        ("code,voltage", [(0, 0.0), (1, "nan"), (2, 0.2), (3, 0.3)], "Expected finite voltage"),
    ],
)
def test_multibit_dac_rejects_malformed_tables(tmp_path, header, rows, message):
    table = write_table(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ConfigError, match="dac model 'multibit'") as info:
        multibit(bits=2, table=table)
    assert info.match(message) and "bad.csv" in str(info.value)


def test_multibit_dac_rejects_missing_and_empty_tables(tmp_path):
    missing = str(tmp_path / "nowhere.csv")
    with pytest.raises(
        ConfigError,
        match=r"Expected `table` to name a readable CSV file, but got "
        r"'.*nowhere.csv' \(No such file or directory\)",
    ):
        multibit(bits=2, table=missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="Expected a header line and one row per code in"):
        multibit(bits=2, table=str(empty))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bits": 0}, "Expected `bits` to be an integer in [1, 24] or None, but got 0"),
        ({"bits": -3}, "Expected `bits` to be an integer in [1, 24] or None, but got -3"),
        ({"v_max": 0.0}, "Expected `v_max` to be a number in (0, 10], but got 0.0"),
        ({"v_max": -1.0}, "Expected `v_max` to be a number in (0, 10], but got -1.0"),
        ({"polarity": "bipolar", "bits": 1}, "Expected `bits` >= 2 for a bipolar DAC"),
        ({"inl": [0.1]}, "Expected `bits` to be set when `inl` or `table` gives the transfer"),
        ({"table": "x.csv"}, "Expected `bits` to be set when `inl` or `table`"),
        ({"bits": 3, "inl": [0.1], "table": "x.csv"}, "Expected either `inl` or `table`"),
        ({"polarity": "both"}, "Expected `polarity` to be one of 'unipolar', 'bipolar'"),
    ],
)
def test_multibit_dac_bad_parameters(params, message):
    with pytest.raises(ConfigError, match="dac model 'multibit'") as info:
        multibit(**params)
    assert message in str(info.value)


def test_multibit_dac_rejects_bad_input_precision():
    with pytest.raises(
        ConfigError,
        match=r"Expected `bits` of the inputs of the multibit DAC to "
        r"be an integer in \[2, 62\], but got 1",
    ):
        multibit()(torch.zeros(2, 3), 1)
