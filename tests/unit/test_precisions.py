"""--precision auto: fp32 and what the device accelerates, on each engine that offers it."""
import pytest

from coordinator.config import BenchConfig
from coordinator.errors import UsageError
from coordinator.machine.precisions import AUTO, accelerated, for_engine, why

ZEN5 = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"]
SAPPHIRE_RAPIDS = ZEN5 + ["amx_bf16", "amx_int8", "avx512_fp16"]


def test_what_a_cpu_accelerates_comes_from_its_flags():
    assert accelerated("cpu", ["avx2", "fma"]) == []
    assert accelerated("cpu", ZEN5) == ["bf16", "int8"]
    assert accelerated("cpu", SAPPHIRE_RAPIDS) == ["bf16", "int8", "fp16"]
    assert why("bf16", SAPPHIRE_RAPIDS) == "amx_bf16, avx512_bf16"
    assert accelerated("cuda:0", [], [{"name": "NVIDIA H100 80GB HBM3"}]) == ["fp16", "bf16"]
    assert accelerated("cuda:0", [], [{"name": "Tesla T4"}]) == ["fp16"]


def test_auto_adds_to_fp32_only_what_the_engine_offers():
    openvino, torch_only = ("fp32", "bf16", "fp16", "int8"), ("fp32",)
    assert for_engine([AUTO], openvino, ["bf16", "int8"]) == ["fp32", "bf16", "int8"]
    assert for_engine([AUTO], torch_only, ["bf16", "int8"]) == ["fp32"]
    assert for_engine(["fp16", AUTO], openvino, ["bf16"]) == ["fp32", "fp16", "bf16"]  # asked as well
    assert for_engine(["fp32", "int8"], openvino, ["bf16"]) == ["fp32", "int8"]  # no auto: as asked


def test_auto_is_a_valid_precision_and_a_typo_is_one_line():
    assert BenchConfig.of(model="-", precisions=[AUTO], device="cpu").points.precisions == [AUTO]
    with pytest.raises(UsageError, match="valid: fp32.*auto"):
        BenchConfig.of(model="-", precisions=["bf61"], device="cpu")
