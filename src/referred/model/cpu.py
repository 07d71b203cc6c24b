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
  float32 linears: forced by ``REFERRED_CPU_GEMM``, else the faster of the two in a short
  measurement (~0.5 s) cached per machine under ``~/.cache/referred/cpu/``
  (``REFERRED_CACHE_DIR`` moves it; delete the file to measure again).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ENV_ISA = "REFERRED_CPU_ISA"
ENV_GEMM = "REFERRED_CPU_GEMM"
ENV_CACHE = "REFERRED_CACHE_DIR"
#: Instruction-set levels, smallest first. ``avx512`` means F, BW, VL and DQ.
ISA_LEVELS = ("default", "avx2", "avx512", "avx512_bf16")
GEMM_BACKENDS = ("onednn", "torch")
#: oneDNN must beat F.linear by this factor in the probe to be picked. Where it uses AVX-512
#: and MKL does not it is ~2× faster; on an AVX2-only EPYC the two were within ±10% in the
#: probe yet the whole B/16 forward ran 10-15% faster on F.linear, so near-ties keep F.linear.
ONEDNN_MARGIN = 1.25
#: The probe's products (M, K, N): B/16's MLP up-projection on 256 tokens and its
#: down-projection on 1,024 (~6 GFLOP together; small and large M behave differently).
PROBE_SHAPES = ((256, 768, 3072), (1024, 3072, 768))


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


def _read_cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in ``/proc/cpuinfo`` (empty flags if none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
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
def _cache_file() -> Path:
    info = cpu_info()
    key = "|".join(
        [info.name, info.isa, ",".join(sorted(info.flags)), torch.__version__,
         str(torch.get_num_threads())]
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "referred"
    return Path(root) / "cpu" / f"gemm-{digest}.json"


def measure_gemm(reps: int = 4) -> dict[str, float]:
    """GFLOP/s of the float32 products :data:`PROBE_SHAPES` per backend.

    The backends alternate within each repetition and the best repetition counts (the least
    disturbed by other processes on a shared machine).
    """
    g = torch.Generator().manual_seed(0)
    calls: dict[str, list] = {"torch": []}
    if onednn_available():
        calls["onednn"] = []
    for m, k, n in PROBE_SHAPES:
        x, w, b = (torch.randn(s, generator=g) for s in ((m, k), (n, k), (n,)))
        calls["torch"].append(lambda x=x, w=w, b=b: F.linear(x, w, b))
        if "onednn" in calls:
            p = torch.ops.mkldnn._reorder_linear_weight(w, m)
            calls["onednn"].append(
                lambda x=x, p=p, b=b: torch.ops.mkldnn._linear_pointwise(x, p, b, "none", [], "")
            )
    best = {name: float("inf") for name in calls}
    with torch.inference_mode():
        for rep in range(reps + 1):  # the first round warms up (packing, page faults)
            for name, fs in calls.items():
                t = time.perf_counter()
                for f in fs:
                    f()
                if rep:
                    best[name] = min(best[name], time.perf_counter() - t)
    flop = sum(2.0 * m * k * n for m, k, n in PROBE_SHAPES)
    return {name: flop / t / 1e9 for name, t in best.items()}


def choose_gemm(rates: dict[str, float]) -> str:
    """oneDNN where it beats ``F.linear`` by :data:`ONEDNN_MARGIN`, else torch."""
    onednn, plain = rates.get("onednn", 0.0), rates.get("torch", 0.0)
    return "onednn" if onednn > ONEDNN_MARGIN * plain else "torch"


@functools.lru_cache(maxsize=1)
def gemm_decision() -> tuple[str, str]:
    """(backend, why): forced, unavailable, cached or freshly measured."""
    forced = os.environ.get(ENV_GEMM, "").strip().lower()
    if forced:
        if forced not in GEMM_BACKENDS:
            raise ValueError(f"{ENV_GEMM}={forced!r}; accepted: {', '.join(GEMM_BACKENDS)}")
        if forced == "onednn" and not onednn_available():
            raise ValueError(f"{ENV_GEMM}=onednn but this torch has no working oneDNN linear")
        return forced, f"forced by {ENV_GEMM}"
    if not onednn_available():
        return "torch", "this torch has no oneDNN linear"
    path = _cache_file()
    try:
        saved = json.loads(path.read_text())
        return choose_gemm(saved["gflops"]), f"measured earlier on this machine ({path})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rates = measure_gemm()
    _save(path, {"cpu": cpu_info().describe(), "shapes": PROBE_SHAPES, "gflops": rates})
    shown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(rates.items()))
    return choose_gemm(rates), f"measured now: {shown} GFLOP/s"


def _save(path: Path, record: dict) -> None:
    """Write atomically; a cache that cannot be written is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def gemm_backend() -> str:
    """``"onednn"`` or ``"torch"``: the float32 linear to use on this CPU (see the module doc)."""
    return gemm_decision()[0]


def summary() -> str:
    """One line for logs and test headers: CPU, ISA, bfloat16, GEMM choice."""
    backend, why = gemm_decision()
    bf16 = "native" if bf16_problem() is None else "not native (refused)"
    return f"{cpu_info().describe()}; bfloat16 {bf16}; float32 GEMM {backend} ({why})"
