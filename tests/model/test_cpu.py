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
    "rates, use, pick",
    [
        ({"torch": 90.0, "onednn": 200.0}, "inference", "onednn"),
        ({"torch": 90.0, "onednn": 200.0}, "training", "onednn"),
        ({"torch": 94.0, "onednn": 70.0}, "inference", "torch"),
        ({"torch": 62.0, "onednn": 68.0}, "inference", "onednn"),  # 10% ahead (AVX2 Zen 3)
        ({"torch": 62.0, "onednn": 68.0}, "training", "torch"),  # training needs a clear win
        ({"torch": 62.0, "onednn": 63.0}, "inference", "torch"),  # within noise: the plain path
        ({"torch": 62.0, "onednn": 63.0}, "training", "torch"),
        ({"torch": 90.0}, "inference", "torch"),
    ],
)
def test_choose_gemm(rates, use, pick):
    assert cpu.choose_gemm(rates, use) == pick


def test_each_use_is_measured_once_on_its_own_probe_then_read_from_the_cache(
    fresh, monkeypatch, tmp_path
):
    if not cpu.onednn_available():
        pytest.skip("torch without oneDNN: nothing to measure")
    calls = []
    ahead, tie = {"torch": 60.0, "onednn": 66.0}, {"torch": 60.0, "onednn": 61.0}
    probes = {"inference": ("block", ahead), "training": ("gemm", tie)}
    monkeypatch.setattr(
        cpu, "_probe", lambda use: calls.append(probes[use][0]) or dict(probes[use][1])
    )
    backend, why = cpu.gemm_decision("inference")
    assert (backend, calls) == ("onednn", ["block"]) and "measured now" in why
    assert cpu.gemm_backend("training") == "torch" and calls == ["block", "gemm"]
    saved = sorted((tmp_path / "cpu").glob("gemm-*.json"))
    assert [p.name.split("-")[1] for p in saved] == ["inference", "training"]
    record = json.loads(saved[0].read_text())
    assert record["rates"]["onednn"] == 66.0 and record["use"] == "inference"
    assert record["signature"] == cpu.cpu_signature()
    cpu.gemm_decision.cache_clear()  # a new process on the same machine
    backend, why = cpu.gemm_decision("inference")
    assert (backend, len(calls)) == ("onednn", 2) and "measured earlier" in why
    saved[0].write_text("{not json")  # a damaged cache is measured again, not an error
    cpu.gemm_decision.cache_clear()
    assert cpu.gemm_decision("inference")[0] == "onednn" and len(calls) == 3
    with pytest.raises(ValueError, match="use must be one of inference, training"):
        cpu.gemm_decision("serving")


def test_another_cpu_generation_with_the_same_name_is_measured_again(fresh, monkeypatch):
    """VMs name several EPYC generations "AMD EPYC"; family/model/stepping tell them apart."""
    monkeypatch.setattr(cpu, "cpu_signature", lambda: "family 25 model 1 stepping 1")
    first = cpu._cache_file("inference")
    monkeypatch.setattr(cpu, "cpu_signature", lambda: "family 26 model 2 stepping 0")
    assert cpu._cache_file("inference") != first
    assert cpu._cache_file("training") != cpu._cache_file("inference")


def test_the_signature_is_read_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(
        cpu, "_cpuinfo_fields", lambda: {"cpu family": "25", "model": "1", "stepping": "1"}
    )
    assert cpu.cpu_signature() == "family 25 model 1 stepping 1"
    monkeypatch.setattr(cpu, "_cpuinfo_fields", dict)
    assert cpu.cpu_signature() == ""


def test_gemm_can_be_forced_and_bad_values_are_named(fresh):
    fresh.setenv(cpu.ENV_GEMM, "torch")
    assert cpu.gemm_decision() == ("torch", "forced by REFERRED_CPU_GEMM")
    assert cpu.gemm_decision("training") == ("torch", "forced by REFERRED_CPU_GEMM")
    fresh.setenv(cpu.ENV_GEMM, "cublas")
    cpu.gemm_decision.cache_clear()
    with pytest.raises(ValueError, match="REFERRED_CPU_GEMM='cublas'; accepted: onednn, torch"):
        cpu.gemm_decision()


@pytest.mark.parametrize("use", cpu.GEMM_USES)
def test_the_real_probes_give_positive_rates(use):
    rates = cpu._probe(use)
    assert rates["torch"] > 0 and all(v > 0 for v in rates.values())
    assert set(rates) == ({"torch", "onednn"} if cpu.onednn_available() else {"torch"})


def test_paired_rates_follow_the_per_repetition_ratio_not_the_drift():
    """Load that doubles every time mid-run: each pair still shows oneDNN 2x ahead."""
    times = {"torch": [1.0, 2.0, 4.0, 8.0, 16.0], "onednn": [0.5, 1.0, 2.0, 4.0, 8.0]}
    rates = cpu.paired_rates(times)
    assert rates["torch"] == pytest.approx(1 / 4.0)
    assert rates["onednn"] / rates["torch"] == pytest.approx(2.0)


def test_time_interleaved_alternates_the_order_and_warms_up_once():
    order = []
    calls = {"torch": lambda: order.append("t"), "onednn": lambda: order.append("o")}
    times = cpu.time_interleaved(calls, reps=3)
    assert "".join(order) == "to" + "ot" + "to" + "ot"  # warm-up, then reversed every other
    assert all(len(ts) == 3 and min(ts) >= 0 for ts in times.values())


def test_summary_names_cpu_isa_bf16_and_gemm(fresh):
    fresh.setenv(cpu.ENV_GEMM, "torch")
    line = cpu.summary()
    assert cpu.cpu_info().name in line and "ISA" in line and "bfloat16" in line
    assert "float32 GEMM for inference torch (forced" in line
    assert "for training torch (forced" in line
