"""Which precisions a device accelerates, and what `--precision auto` runs on each engine: fp32
(the rows every other is judged against) and every precision this device runs natively that the
engine offers, each in the engine's own way (its manifest's precisions; its runner reads back
what ran). A CPU accelerates bf16 with AVX512-BF16 or AMX-BF16, int8 with VNNI or AMX-INT8, and
fp16 with AVX512-FP16 or AMX-FP16 (without them fp16 is emulated: slower than fp32);
an NVIDIA GPU fp16 (and bf16 from compute capability 8, Ampere).
"""
from typing import Dict, Iterable, List, Sequence

AUTO = "auto"
# CPU flags (as /proc/cpuinfo spells them) -> the precision they accelerate
ACCELERATES = (("amx_bf16", "bf16"), ("avx512_bf16", "bf16"), ("amx_int8", "int8"), ("avx512_vnni", "int8"),
               ("avx_vnni", "int8"), ("amx_fp16", "fp16"), ("avx512_fp16", "fp16"))


def accelerated(device: str, cpu_flags: Iterable[str], gpus: Sequence[Dict] = ()) -> List[str]:
    """The precisions below fp32 that `device` runs natively, in a stable order."""
    if device != "cpu":
        names = " ".join(str(g.get("name", "")) for g in gpus)
        older = any(old in names for old in ("V100", "T4", "P100", "P4", "K80"))  # before Ampere: no bf16
        return ["fp16"] if older else ["fp16", "bf16"]
    flags = set(cpu_flags)
    return list(dict.fromkeys(p for f, p in ACCELERATES if f in flags))


def why(precision: str, cpu_flags: Iterable[str]) -> str:
    """The CPU flags that make `precision` fast here, in words."""
    flags = set(cpu_flags)
    return ", ".join(f for f, p in ACCELERATES if p == precision and f in flags)


def for_engine(asked: Sequence[str], offered: Sequence[str], native: Sequence[str]) -> List[str]:
    """The rows' precisions for one engine: as asked, or with `auto`, fp32 and every `native`
    precision the engine `offered` (besides any other precision asked)."""
    if AUTO not in asked:
        return list(asked)
    extra = [p for p in native if p in offered]
    return list(dict.fromkeys(p for p in ("fp32", *[a for a in asked if a != AUTO], *extra)))
