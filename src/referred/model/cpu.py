"""What this CPU computes well, decided at run time: the one place that picks CPU kernels.

Development and CI hosts change: one has AVX-512 with native bfloat16 (oneDNN's float32 GEMM
~200 GFLOP/s, MKL's ~90), another AVX2 only (MKL ~94, oneDNN slower, bfloat16 emulated at
~0.1 GFLOP/s). Nothing in ``referred`` assumes either. This module answers, per process:

* :func:`cpu_info` — the CPU's name and the instruction-set level it offers (``default`` <
  ``avx2`` < ``avx512`` < ``avx512_bf16``), from ``/proc/cpuinfo`` (torch's own capability
  probe elsewhere), capped by ``REFERRED_CPU_ISA`` so a bigger host can behave as a smaller one
  (tests then run every branch on any machine);
* :func:`bf16_problem` — why bfloat16 arithmetic must not be used here (``None`` where the CPU
  computes it natively: ``avx512_bf16`` or AMX); :func:`require_native_bf16` raises it;
* :func:`gemm_backend` — ``"onednn"`` or ``"torch"`` (``F.linear``, i.e. MKL's sgemm) for
  float32 linears, per use, each timed on the code it decides: ``"inference"`` on a two-block
  B/16-wide model through the fast path (:mod:`referred.model.fast`; oneDNN fuses SiLU and the
  residual add into its GEMMs), ``"training"`` on an MLP's forward and backward through the
  training linears (:mod:`referred.model.cpu_linear`). Forced by ``REFERRED_CPU_GEMM``, else
  the faster in a short measurement (~1–2 s each) cached per machine (CPU name,
  family/model/stepping, flags, torch, threads) under ``~/.cache/referred/cpu/``
  (``REFERRED_CACHE_DIR`` moves it; delete the file to measure again). Two AVX2-only EPYCs
  differed: on one the fast path ran 8% faster on MKL's sgemm, on the other (Zen 3) 5–10%
  faster on oneDNN.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_ISA = "REFERRED_CPU_ISA"
ENV_GEMM = "REFERRED_CPU_GEMM"
ENV_CACHE = "REFERRED_CACHE_DIR"
#: Instruction-set levels, smallest first. ``avx512`` means F, BW, VL and DQ.
ISA_LEVELS = ("default", "avx2", "avx512", "avx512_bf16")
GEMM_BACKENDS = ("onednn", "torch")
GEMM_USES = ("inference", "training")
#: oneDNN must beat F.linear by this factor in a use's probe to be picked for it. Inference is
#: timed on its own code path, so the margin only keeps noise from flipping near-ties. For
#: training the probe (an MLP) and whole B/16 steps disagreed by ±20% on an AVX2-only EPYC, so
#: oneDNN must win clearly (it does where it has AVX-512 and MKL not: ~2×).
ONEDNN_MARGIN = {"inference": 1.03, "training": 1.25}
#: Bumped when a probe changes, so older cached answers are measured again.
PROBE_VERSION = "2"


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``referred`` sees it: ``isa`` is the detected level after the cap."""

    name: str
    flags: frozenset[str]
    detected: str  # the level the hardware offers
    isa: str  # the level the code uses (``detected`` capped by REFERRED_CPU_ISA)

    def describe(self) -> str:
        capped = f" (capped by {ENV_ISA}; the CPU offers {self.detected})" if self.capped else ""
        return f"{self.name}; ISA {self.isa}{capped}"

    @property
    def capped(self) -> bool:
        return self.isa != self.detected


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _read_cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in ``/proc/cpuinfo`` (empty flags if none)."""
    fields = _cpuinfo_fields()
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    return name, frozenset(fields.get("flags", "").split())


def isa_level(flags: frozenset[str]) -> str:
    """The largest level of :data:`ISA_LEVELS` that ``flags`` (``/proc/cpuinfo`` names) cover."""
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
    if avx512 and ("avx512_bf16" in flags or "amx_bf16" in flags):
        return "avx512_bf16"
    if avx512:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "default"


def _torch_level() -> str:
    """Torch's own probe (``AVX512``, ``AVX2``, …) where ``/proc/cpuinfo`` is missing."""
    cap = str(torch.backends.cpu.get_cpu_capability()).lower()
    return "avx512" if "avx512" in cap else "avx2" if "avx2" in cap else "default"


def _cap(detected: str) -> str:
    want = os.environ.get(ENV_ISA, "").strip().lower()
    if not want:
        return detected
    if want not in ISA_LEVELS:
        accepted = ", ".join(ISA_LEVELS)
        raise ValueError(f"{ENV_ISA}={want!r} is not an ISA level; accepted: {accepted}")
    return min(detected, want, key=ISA_LEVELS.index)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This CPU, read once per process (call ``cpu_info.cache_clear()`` after changing env)."""
    name, flags = _read_cpuinfo()
    detected = isa_level(flags) if flags else _torch_level()
    return CpuInfo(name=name, flags=flags, detected=detected, isa=_cap(detected))


def bf16_problem() -> str | None:
    """Why bfloat16 arithmetic should not run on this CPU, or None where it is native."""
    info = cpu_info()
    if info.isa == "avx512_bf16":
        return None
    return (
        f"this CPU ({info.describe()}) has no native bfloat16 arithmetic (avx512_bf16 or "
        "amx_bf16): bfloat16 matmuls would be emulated, hundreds of times slower than float32"
    )


def require_native_bf16(what: str) -> None:
    """Raise a ValueError naming ``what`` when bfloat16 is not native here."""
    problem = bf16_problem()
    if problem:
        raise ValueError(f"{what} in bfloat16 is refused: {problem}; use float32 (fp32)")


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """Whether ``mkldnn::_linear_pointwise`` exists and computes a product here (probed once)."""
    try:
        x, w = torch.arange(8.0).view(2, 4), torch.ones(3, 4)
        y = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
        return bool(torch.backends.mkldnn.is_available() and torch.equal(y, x @ w.T))
    except (AttributeError, RuntimeError):
        return False


# -- the GEMM choice ------------------------------------------------------------------------------
def cpu_signature() -> str:
    """Family, model and stepping from ``/proc/cpuinfo`` (a VM often names every EPYC just
    "AMD EPYC"; these tell two generations apart), or ``""`` where they are missing."""
    fields = _cpuinfo_fields()
    parts = [f"{k} {fields[f]}" for k, f in
             (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))
             if f in fields]  # fmt: skip
    return " ".join(parts)


def _cache_file(use: str) -> Path:
    info = cpu_info()
    key = "|".join(
        [PROBE_VERSION, use, info.name, cpu_signature(), info.isa, ",".join(sorted(info.flags)),
         torch.__version__, str(torch.get_num_threads())]
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "referred"
    return Path(root) / "cpu" / f"gemm-{use}-{digest}.json"


def _probe(use: str) -> dict[str, float]:
    """Relative float32 rates of each backend for ``use``, timed on the code that use runs:
    :func:`referred.model.fast.measure_backends` (a two-block B/16-wide model through the
    inference path) or :func:`referred.model.cpu_linear.measure_backends` (an MLP's forward
    and backward through the training linears). Imported here, as they sit above this module."""
    if use == "inference":
        from referred.model.fast import measure_backends
    else:
        from referred.model.cpu_linear import measure_backends
    return measure_backends()


def paired_rates(times: dict[str, list[float]]) -> dict[str, float]:
    """Rates (calls/s) from interleaved timings, robust to a shared machine's drift: torch's is
    its median; every other backend's is that times the median of its per-repetition speed-up
    over torch (two calls next to each other see the same load)."""
    base = statistics.median(times["torch"])
    rates = {"torch": 1.0 / base}
    for name, ts in times.items():
        if name != "torch":
            ratio = statistics.median(t0 / t for t0, t in zip(times["torch"], ts, strict=True))
            rates[name] = ratio / base
    return rates


def time_interleaved(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds of each call per repetition; one warm-up call each, then the calls alternate
    (the order reversed every other repetition)."""
    for f in calls.values():
        f()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for rep in range(reps):
        for name in names if rep % 2 else names[::-1]:
            t = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t)
    return times


def choose_gemm(rates: dict[str, float], use: str = "inference") -> str:
    """oneDNN where it beats ``F.linear`` by the use's margin (:data:`ONEDNN_MARGIN`), else
    torch."""
    onednn, plain = rates.get("onednn", 0.0), rates.get("torch", 0.0)
    return "onednn" if onednn > ONEDNN_MARGIN[use] * plain else "torch"


@functools.cache
def gemm_decision(use: str = "inference") -> tuple[str, str]:
    """(backend, why) for ``use`` (``"inference"`` or ``"training"``): forced, unavailable,
    cached or freshly measured."""
    if use not in GEMM_USES:
        raise ValueError(f"use must be one of {', '.join(GEMM_USES)}, got {use!r}")
    forced = os.environ.get(ENV_GEMM, "").strip().lower()
    if forced:
        if forced not in GEMM_BACKENDS:
            raise ValueError(f"{ENV_GEMM}={forced!r}; accepted: {', '.join(GEMM_BACKENDS)}")
        if forced == "onednn" and not onednn_available():
            raise ValueError(f"{ENV_GEMM}=onednn but this torch has no working oneDNN linear")
        return forced, f"forced by {ENV_GEMM}"
    if not onednn_available():
        return "torch", "this torch has no oneDNN linear"
    path = _cache_file(use)
    try:
        saved = json.loads(path.read_text())
        return choose_gemm(saved["rates"], use), f"measured earlier on this machine ({path})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rates = _probe(use)
    record = {"cpu": cpu_info().describe(), "signature": cpu_signature(), "use": use,
              "rates": rates, "unit": "calls/s of the probe"}  # fmt: skip
    _save(path, record)
    speedup = rates.get("onednn", 0.0) / rates["torch"]
    return choose_gemm(rates, use), f"measured now: oneDNN {speedup:.2f}x F.linear"


def _save(path: Path, record: dict) -> None:
    """Write atomically; a cache that cannot be written is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def gemm_backend(use: str = "inference") -> str:
    """``"onednn"`` or ``"torch"``: the float32 linear for ``use`` on this CPU (module doc)."""
    return gemm_decision(use)[0]


def summary() -> str:
    """One line for logs and test headers: CPU, ISA, bfloat16, GEMM choice."""
    inference, why = gemm_decision("inference")
    training, why_training = gemm_decision("training")
    bf16 = "native" if bf16_problem() is None else "not native (refused)"
    signature = f" ({cpu_signature()})" if cpu_signature() else ""
    return (
        f"{cpu_info().describe()}{signature}; bfloat16 {bf16}; float32 GEMM for inference "
        f"{inference} ({why}), for training {training} ({why_training})"
    )
