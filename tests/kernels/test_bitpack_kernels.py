"""Every compiled bitpack variant equals the reference and the pure-torch packer, byte for byte."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onebit import _C, bitpack, kernels

VARIANTS = kernels.runnable_variants("bitpack")
EDGE_CHANNELS = [1, 63, 64, 65, 127, 128, 129, 511, 512, 513]


def as_i64(t):
    return t.view(torch.int64)


def test_reference_and_portable_always_runnable():
    assert VARIANTS[:2] == ["reference", "portable"]
    assert kernels.available_isas()[0] == "portable"


def test_all_isas_of_this_cpu_are_compiled():
    # On a CPU with AVX2 / AVX-512 VPOPCNTDQ those variants must exist and be runnable, never skipped.
    for isa in kernels.available_isas():
        assert isa in VARIANTS


def test_emulated_avx512_only_in_its_test_build():
    # scripts/test_avx512_emulated.sh sets ONEBIT_AVX512_EMULATED_RUN=1; any other build must run the
    # real instructions (an emulated build is slow and would make every benchmark meaningless).
    expected = os.environ.get("ONEBIT_AVX512_EMULATED_RUN") == "1"
    assert kernels.AVX512_EMULATED is expected
    if expected:
        assert "avx512" in kernels.available_isas()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels", EDGE_CHANNELS)
@pytest.mark.parametrize("mode", ["sign", "heaviside"])
def test_variant_matches_torch_at_word_edges(variant, channels, mode):
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(7, channels, generator=g)
    x[0, : channels // 2] = 0.0  # exact zeros: sign(0) = +1 -> bit 0, H(0) = 0 -> bit 0
    t = torch.randn(channels, generator=g)
    for thresholds in (None, t):
        expected = bitpack.pack(x, mode=mode, thresholds=thresholds)
        got = kernels.pack(x, mode=mode, thresholds=thresholds, variant=variant)
        assert torch.equal(as_i64(got), as_i64(expected)), (variant, channels, mode)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=0, max_size=2), channels=st.integers(1, 700),
       seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["sign", "heaviside"]))
def test_property_all_variants_identical(shape, channels, seed, mode):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, channels, generator=g)
    expected = as_i64(bitpack.pack(x, mode=mode))
    for variant in VARIANTS:
        assert torch.equal(as_i64(kernels.pack(x, mode=mode, variant=variant)), expected), variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_and_inf(variant):
    x = torch.tensor([[float("nan"), float("inf"), -float("inf"), -0.0, 0.0]])
    assert as_i64(kernels.pack(x, variant=variant)).tolist() == [[0b00100]]
    assert as_i64(kernels.pack(x, mode="heaviside", variant=variant)).tolist() == [[0b00010]]


def test_integer_and_numpy_inputs():
    xi = torch.tensor([[-3, 0, 5, -1]], dtype=torch.int32)
    assert as_i64(kernels.pack(xi)).tolist() == [[0b1001]]
    xn = np.array([[-1.0, 2.0]], dtype=np.float64)
    assert as_i64(kernels.pack(xn)).tolist() == [[0b01]]
    xb = torch.tensor([[1, -1, 1]], dtype=torch.int8)
    assert as_i64(kernels.pack(xb)).tolist() == [[0b010]]


def test_non_contiguous_input():
    x = torch.randn(130, 6).t()  # (6, 130), not contiguous
    assert torch.equal(as_i64(kernels.pack(x)), as_i64(bitpack.pack(x)))


def test_dispatched_variant_of_every_op():
    # The variant dispatch runs: runnable, dispatchable, of the highest ISA the active level allows
    # among that op's variants; use_isa("portable") turns every op portable.
    for op in kernels.KERNEL_OPS:
        table = {name: (isa, dispatch) for name, isa, dispatch in _C.kernel_variants(op)}
        best = kernels.dispatched_variant(op)
        assert best in kernels.runnable_variants(op) and table[best][1], op
        order = kernels.available_isas()
        allowed = [n for n, (isa, d) in table.items() if d and isa in order]
        assert order.index(table[best][0]) == max(order.index(table[n][0]) for n in allowed), op
        with kernels.use_isa("portable"):
            assert table[kernels.dispatched_variant(op)][0] == "portable", op
    assert kernels.dispatched_variant("bgemm") in kernels.dispatch_summary()
    with pytest.raises(ValueError, match="unknown op"):
        kernels.dispatched_variant("nope")


def test_dispatch_uses_best_and_use_isa_forces():
    x = torch.randn(2, 100)
    expected = as_i64(bitpack.pack(x))
    assert kernels.active_isa() == kernels.available_isas()[-1]
    for isa in kernels.available_isas():
        with kernels.use_isa(isa):
            assert kernels.active_isa() == isa
            assert torch.equal(as_i64(kernels.pack(x)), expected)
    assert kernels.active_isa() == kernels.available_isas()[-1]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="valid"):
        kernels.pack(torch.zeros(2, 3), mode="nope")
    with pytest.raises(ValueError, match="thresholds"):
        kernels.pack(torch.zeros(2, 3), thresholds=torch.zeros(4))
    with pytest.raises(ValueError, match="unknown kernel variant"):
        kernels.pack(torch.zeros(2, 3), variant="avx1024")
    with pytest.raises(ValueError, match="dimension"):
        kernels.pack(torch.tensor(1.0))
    with pytest.raises(TypeError):
        kernels.pack(torch.zeros(2, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="unknown ISA"):
        with kernels.use_isa("sse9"):
            pass


def _run_with_env(isa):
    code = "import onebit; print(onebit.kernels.active_isa())"
    env = dict(os.environ, ONEBIT_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_env_var_forces_isa():
    result = _run_with_env("portable")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "portable"


def test_env_var_with_bad_isa_fails_loudly():
    result = _run_with_env("avx9000")
    assert result.returncode != 0
    assert "unknown ISA" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels,groups", [(2, 2), (126, 2), (128, 2), (130, 2), (195, 3), (1026, 2), (64, 4)])
@pytest.mark.parametrize("mode", ["sign", "heaviside"])
def test_groups_start_at_word_boundaries(variant, channels, groups, mode):
    # Grouped layout (bitpack.h): each group packed on its own, the groups' words side by side.
    g = torch.Generator().manual_seed(channels + groups)
    x = torch.randn(5, channels, generator=g)
    t = torch.randn(channels, generator=g)
    cg = channels // groups
    for thresholds in (None, t):
        parts = [bitpack.pack(x[:, i * cg:(i + 1) * cg], mode=mode,
                              thresholds=None if thresholds is None else thresholds[i * cg:(i + 1) * cg])
                 for i in range(groups)]
        got = kernels.pack(x, mode=mode, thresholds=thresholds, variant=variant, groups=groups)
        assert torch.equal(as_i64(got), as_i64(torch.cat(parts, dim=1))), (variant, channels, groups)


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        kernels.pack(torch.zeros(2, 10), groups=3)
