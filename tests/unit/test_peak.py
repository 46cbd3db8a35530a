"""The machine's arithmetic peaks: measured by a real matrix product, once, then read from the cache
unless a row went past one."""
from coordinator.machine import peak


def test_peaks_are_measured_once_and_again_only_when_a_row_passed_one(tmp_path):
    first = peak.peaks(tmp_path, 1, "cpu", "this machine", ("fp32", "bf16"))
    assert all(v is not None and v > 0 for v in first.values()), first
    assert peak.peaks(tmp_path, 1, "cpu", "this machine", ("fp32", "bf16")) == first  # from the cache, as it was
    again = peak.peaks(tmp_path, 1, "cpu", "this machine", ("fp32",), reached={"fp32": first["fp32"] * 1e6})
    assert again["fp32"] >= first["fp32"]  # measured again, the higher kept
    assert len(list((tmp_path / "machine").glob("peaks-*.json"))) == 1
    other = peak.peaks(tmp_path, 1, "cpu", "another machine", ("fp32",))  # another CPU: its own entry
    assert other["fp32"] > 0 and len(list((tmp_path / "machine").glob("peaks-*.json"))) == 2
