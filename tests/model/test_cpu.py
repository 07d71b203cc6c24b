"""referred.model.cpu decides per host: ISA level, bfloat16 refusal, the float32 GEMM."""

from __future__ import annotations

import json

import pytest

from referred.model import cpu

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq"}


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Clean decision caches, a private measurement cache and no forcing variables."""
    for var in (cpu.ENV_ISA, cpu.ENV_GEMM):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(cpu.ENV_CACHE, str(tmp_path))
    cpu.cpu_info.cache_clear()
    cpu.gemm_decision.cache_clear()
    yield monkeypatch
    cpu.cpu_info.cache_clear()
    cpu.gemm_decision.cache_clear()


@pytest.mark.parametrize(
    "flags, level",
    [
        (frozenset({"sse2", "avx"}), "default"),
        (frozenset({"avx2"}), "default"),  # AVX2 without FMA is not the avx2 level
        (AVX2, "avx2"),
        (AVX2 | {"avx512f"}, "avx2"),  # AVX-512 F alone: BW/VL/DQ missing
        (AVX512, "avx512"),
        (AVX512 | {"avx512_bf16"}, "avx512_bf16"),
        (AVX512 | {"amx_bf16", "amx_tile"}, "avx512_bf16"),
        (AVX2 | {"avx_vnni", "avx512_bf16"}, "avx2"),
    ],
)
def test_isa_level_from_cpuinfo_flags(flags, level):
    assert cpu.isa_level(flags) == level


def test_the_cap_makes_a_bigger_host_behave_as_a_smaller_one(fresh):
    detected = cpu.cpu_info().detected
    fresh.setenv(cpu.ENV_ISA, "avx2")
    cpu.cpu_info.cache_clear()
    info = cpu.cpu_info()
    assert info.isa == min(detected, "avx2", key=cpu.ISA_LEVELS.index)
    assert cpu.bf16_problem() is not None  # no host capped at avx2 computes bf16 natively
    with pytest.raises(ValueError, match=r"training in bfloat16 is refused: .*no native"):
        cpu.require_native_bf16("training")
    if detected != info.isa:
        assert "capped by REFERRED_CPU_ISA" in info.describe()


def test_a_cap_never_raises_the_level(fresh):
    fresh.setenv(cpu.ENV_ISA, "avx512_bf16")
    cpu.cpu_info.cache_clear()
    assert cpu.cpu_info().isa == cpu.cpu_info().detected
    assert not cpu.cpu_info().capped


def test_a_bad_cap_is_named(fresh):
    fresh.setenv(cpu.ENV_ISA, "sse9")
    cpu.cpu_info.cache_clear()
    with pytest.raises(ValueError, match=r"REFERRED_CPU_ISA='sse9'.*avx2"):
        cpu.cpu_info()


@pytest.mark.parametrize(
    "flags, native", [(AVX2, False), (AVX512, False), (AVX512 | {"avx512_bf16"}, True)]
)
def test_native_bf16_follows_the_cpuinfo_flags(fresh, flags, native):
    fresh.setattr(cpu, "_read_cpuinfo", lambda: ("test CPU", flags))
    cpu.cpu_info.cache_clear()
    assert cpu.cpu_info().name == "test CPU"
    assert (cpu.bf16_problem() is None) is native
    if not native:
        assert "test CPU; ISA avx" in cpu.bf16_problem()


@pytest.mark.parametrize(
    "rates, pick",
    [
        ({"torch": 90.0, "onednn": 200.0}, "onednn"),
        ({"torch": 94.0, "onednn": 70.0}, "torch"),
        ({"torch": 62.0, "onednn": 66.0}, "torch"),  # a near-tie (AVX2 EPYC): the plain path
        ({"torch": 90.0}, "torch"),
    ],
)
def test_choose_gemm(rates, pick):
    assert cpu.choose_gemm(rates) == pick


def test_gemm_is_measured_once_then_read_from_the_cache(fresh, monkeypatch, tmp_path):
    if not cpu.onednn_available():
        pytest.skip("torch without oneDNN: nothing to measure")
    calls = []
    monkeypatch.setattr(
        cpu, "measure_gemm", lambda: calls.append(1) or {"torch": 50.0, "onednn": 100.0}
    )
    backend, why = cpu.gemm_decision()
    assert (backend, len(calls)) == ("onednn", 1) and "measured now" in why
    saved = list((tmp_path / "cpu").glob("gemm-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["gflops"]["onednn"] == 100.0
    cpu.gemm_decision.cache_clear()  # a new process on the same machine
    backend, why = cpu.gemm_decision()
    assert (backend, len(calls)) == ("onednn", 1) and "measured earlier" in why
    saved[0].write_text("{not json")  # a damaged cache is measured again, not an error
    cpu.gemm_decision.cache_clear()
    assert cpu.gemm_decision()[0] == "onednn" and len(calls) == 2


def test_gemm_can_be_forced_and_bad_values_are_named(fresh):
    fresh.setenv(cpu.ENV_GEMM, "torch")
    assert cpu.gemm_decision() == ("torch", "forced by REFERRED_CPU_GEMM")
    fresh.setenv(cpu.ENV_GEMM, "cublas")
    cpu.gemm_decision.cache_clear()
    with pytest.raises(ValueError, match="REFERRED_CPU_GEMM='cublas'; accepted: onednn, torch"):
        cpu.gemm_decision()


def test_the_real_measurement_gives_positive_rates():
    rates = cpu.measure_gemm(reps=1)
    assert rates["torch"] > 0 and all(v > 0 for v in rates.values())
    assert set(rates) == ({"torch", "onednn"} if cpu.onednn_available() else {"torch"})


def test_summary_names_cpu_isa_bf16_and_gemm(fresh):
    fresh.setenv(cpu.ENV_GEMM, "torch")
    line = cpu.summary()
    assert cpu.cpu_info().name in line and "ISA" in line and "bfloat16" in line
    assert "float32 GEMM torch (forced" in line
