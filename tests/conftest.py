"""Suite-wide settings: offline, single-threaded, deterministic; the CPU named in the header.

``REFERRED_CPU_ISA=avx2 make test`` runs the suite as on an AVX2-only host: ``referred``'s own
decisions follow the cap, and torch's and oneDNN's kernels are capped too (their variables are
read when torch loads, so they are set here, before the import).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# referred ISA level → (ATen's dispatch cap, oneDNN's ISA cap)
_KERNEL_CAPS = {"default": ("default", "SSE41"), "avx2": ("avx2", "AVX2"),
                "avx512": ("avx512", "AVX512_CORE")}  # fmt: skip
_cap = os.environ.get("REFERRED_CPU_ISA", "").strip().lower()
if _cap in _KERNEL_CAPS:
    os.environ.setdefault("ATEN_CPU_CAPABILITY", _KERNEL_CAPS[_cap][0])
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", _KERNEL_CAPS[_cap][1])

import torch  # noqa: E402

torch.set_num_threads(1)

pytest_plugins = ["tests.milvus_fixture"]  # the session's real Milvus server, on first use


def pytest_report_header(config):
    from referred.model import cpu

    caps = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
            if k in os.environ]  # fmt: skip
    line = f"cpu: {cpu.summary()}; torch kernels {torch.backends.cpu.get_cpu_capability()}"
    return [line + (f" ({', '.join(caps)})" if caps else "")]
