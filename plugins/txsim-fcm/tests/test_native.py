"""Tests of the C kernels of the merges and the terminations (``txsim_fcm.native``)."""

from __future__ import annotations

import pytest
import torch
from txsim_fcm import NetworkError, native, network

from txsim_core.compiled import COMPILE_SWITCH


@pytest.fixture
def kernel():
    if not native.available():
        pytest.skip("no C compiler builds the kernel here")


@pytest.fixture
def rebuild():
    """Forget the built kernel before and after the test (it changes how the kernel builds)."""
    native._library.cache_clear()
    yield
    native._library.cache_clear()


def symmetric_positive_definite(batch, size, seed):
    """Exactly symmetric positive definite matrices (the kernel mirrors what it computes)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, size, size, dtype=torch.float64, generator=gen)
    m = x @ x.mT + size * torch.eye(size, dtype=torch.float64)
    return (m + m.mT) / 2


def ring(start, count, period):
    return [(start + i) % period for i in range(count)]


def merged_by_torch(a, a_ports, b, b_ports, e):
    """The merge that ``native.merge_`` documents, by indexing and PyTorch's Cholesky."""
    sa, a0, ka = a_ports
    shared_a, kept_a = ring(sa, e, a.shape[-1]), ring(a0, ka, a.shape[-1])
    ek = a[..., shared_a, :][..., kept_a]
    ee = a[..., shared_a, :][..., shared_a]
    blocks = [a[..., kept_a, :][..., kept_a]]
    if b is not None:
        sb, b0, kb = b_ports
        shared_b, kept_b = ring(sb, e, b.shape[-1])[::-1], ring(b0, kb, b.shape[-1])
        ek = torch.cat([ek, b[..., shared_b, :][..., kept_b]], -1)
        ee = ee + b[..., shared_b, :][..., shared_b]
        blocks.append(b[..., kept_b, :][..., kept_b])
    w = torch.linalg.solve_triangular(torch.linalg.cholesky(ee), ek, upper=False)
    return block_diagonal(blocks) - w.mT @ w


def block_diagonal(blocks):
    k = sum(x.shape[-1] for x in blocks)
    out = blocks[0].new_zeros(*blocks[0].shape[:-2], k, k)
    at = 0
    for x in blocks:
        out[..., at : at + x.shape[-1], at : at + x.shape[-1]] = x
        at += x.shape[-1]
    return out


@pytest.mark.parametrize(
    ("e", "size_a", "size_b", "sa", "sb"),
    [
        (1, 4, 4, 2, 0),  # the smallest merge: two cells
        (2, 6, 6, 5, 1),  # shared sides across the end of the ring
        (3, 17, 9, 15, 7),
        (8, 24, 24, 20, 4),
        (16, 48, 40, 3, 30),
        (13, 41, 29, 35, 20),  # no size a multiple of the kernel's tiles
        (32, 96, 96, 70, 10),
        (5, 12, None, 9, None),  # an open side: one subdomain alone
        (32, 128, None, 100, None),
    ],
)
def test_merge_matches_the_torch_operations(kernel, e, size_a, size_b, sa, sb):
    """Gather, factorisation, solve, product and kept blocks, on strided batches of systems
    whose sizes are and are not multiples of the kernel's tiles."""
    a_all = symmetric_positive_definite((2, 4), size_a, seed=e * 100 + size_a)
    a = a_all[:, 1::2]  # a strided batch, as the merges of one level read it
    a_ports = (sa, (sa + e) % size_a, size_a - e)
    b, b_ports = None, None
    if size_b is not None:
        b = symmetric_positive_definite((2, 2), size_b, seed=e * 100 + size_b + 1)
        b_ports = (sb, (sb + e) % size_b, size_b - e)
    expected = merged_by_torch(a, a_ports, b, b_ports, e)
    out = torch.full(expected.shape, float("nan"), dtype=torch.float64)
    info = torch.full((4,), 7, dtype=torch.int32)
    side_b = native.side(b, *b_ports) if b is not None else None
    native.merge_(native.side(a, *a_ports), side_b, e, out, info)
    assert torch.equal(info, torch.zeros(4, dtype=torch.int32))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12 * expected.abs().max())
    assert torch.equal(out, out.mT)


def test_merge_flags_the_systems_it_cannot_factorise(kernel):
    a = symmetric_positive_definite((3,), 10, seed=1)
    a[1, 2, 2] = -1.0  # indefinite
    a[2, 0, 0] = float("nan")
    info = torch.empty(3, dtype=torch.int32)
    out = torch.empty(3, 6, 6, dtype=torch.float64)
    native.merge_(native.side(a, 0, 4, 6), None, 4, out, info)
    assert info.tolist() == [0, 1, 1]


def test_a_side_needs_contiguous_square_matrices():
    with pytest.raises(AssertionError, match="contiguous square"):
        native.side(torch.zeros(2, 4, 4, dtype=torch.float64).mT, 0, 1, 3)


@pytest.mark.parametrize(
    "shape",
    [(2, 64, 64), (3, 4, 64), (2, 64, 8), (3, 32, 32), (1, 16, 128), (5, 8, 8), (3, 2, 64)],
)
def test_the_kernels_and_the_torch_operations_give_the_same_admittance(kernel, monkeypatch, shape):
    """The whole solve with and without the kernels (``TXSIM_COMPILE``), spintronic cells;
    blocks of several sizes, and numbers of blocks that do and do not fill the lanes."""
    gen = torch.Generator().manual_seed(sum(shape))
    g = 1e-4 + 9e-4 * torch.rand(shape, dtype=torch.float64, generator=gen)
    calls = []
    for name in ("merge_", "leaves_"):
        real = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    network.clear_workspace()
    with_kernel = network.port_admittance(g, 1.0, 4.6)
    assert set(calls) == {"merge_", "leaves_"}, "the kernels were not used"
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    used = len(calls)
    without = network.port_admittance(g, 1.0, 4.6)
    assert len(calls) == used, "a kernel was used with the switch off"
    # The intermediate Schur complements carry wire conductances (1 S) around cells of 1e-3 S:
    # rounding there, in another order than PyTorch's, reaches the terminals at about 1e-12.
    scale = without.abs().max()
    torch.testing.assert_close(with_kernel, without, rtol=0.0, atol=1e-11 * scale)
    network.clear_workspace()


def test_without_a_compiler_the_solver_warns_once_and_uses_torch(monkeypatch, rebuild):
    monkeypatch.setattr(native, "_compilers", lambda: [])
    with pytest.warns(RuntimeWarning, match=r"could not build its C kernels \(no C compiler"):
        assert not native.available()
    assert not native.available()  # once: the result is kept
    g = torch.full((1, 16, 16), 1e-5, dtype=torch.float64)
    network.clear_workspace()
    assert torch.isfinite(network.port_admittance(g, 1.0, 4.6)).all()


def test_a_failing_compiler_is_named_in_the_warning(monkeypatch, rebuild, tmp_path):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'broken-cc: no such target' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(native, "_compilers", lambda: [str(broken)])
    with pytest.warns(RuntimeWarning, match=r"broken-cc.*no such target"):
        assert not native.available()


def test_the_switch_turns_the_kernel_off_without_building_it(monkeypatch, rebuild):
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    monkeypatch.setattr(native, "_compilers", lambda: pytest.fail("tried to build"))
    assert not native.takes(torch.zeros(2, 2, dtype=torch.float64))


def test_the_kernels_give_the_same_bits_on_any_number_of_threads(kernel):
    """Each system is solved alone, whichever thread takes it (and however the arrays are
    grouped, which depends on the thread count)."""
    gen = torch.Generator().manual_seed(3)
    g = 1e-5 + 9e-5 * torch.rand(9, 32, 64, dtype=torch.float64, generator=gen)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            network.clear_workspace()
            results.append(network.port_admittance(g, 1.0, 4.6))
    finally:
        torch.set_num_threads(threads)
        network.clear_workspace()
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 8, 16), (2, 16, 8), (2, 4, 64), (1, 64, 64)])
@pytest.mark.parametrize(
    ("r_source", "r_sink"), [(100.0, 100.0), (50.0, 10.0), (0.0, 30.0), (20.0, 0.0)]
)
def test_the_termination_kernel_matches_the_torch_operations(
    kernel, monkeypatch, shape, r_source, r_sink
):
    """Both directions, ideal sources and sinks, arrays wider and taller than square; spintronic
    cells, where the wires weigh most."""
    gen = torch.Generator().manual_seed(sum(shape))
    g = 1e-4 + 9e-4 * torch.rand(shape, dtype=torch.float64, generator=gen)
    y = network.port_admittance(g, 1.0, 4.6)
    rows = shape[1]
    with_kernel = [network.terminate(y, rows, r_source, r_sink, d) for d in ("forward", "backward")]
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    for direction, result in zip(("forward", "backward"), with_kernel, strict=True):
        expected = network.terminate(y, rows, r_source, r_sink, direction)
        assert result.shape == expected.shape == shape
        torch.testing.assert_close(result, expected, rtol=0.0, atol=1e-12 * expected.abs().max())


def test_the_termination_kernel_refuses_a_system_that_is_not_positive_definite(kernel):
    y = network.port_admittance(torch.full((1, 8, 8), 1e-5, dtype=torch.float64), 1.0, 4.6)
    y[0, 9, 9] = -1e6  # a sensed terminal with a negative admittance to ground
    with pytest.raises(NetworkError, match="positive definite"):
        network.terminate(y, 8, 100.0, 100.0, "forward")
