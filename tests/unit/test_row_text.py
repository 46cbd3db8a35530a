"""A row's note: what to know about its figures, including how it was timed when not as the run's
schedule says (a launcher that cannot keep its runner loaded times it alone)."""
from coordinator.report.document import Row
from shared import Latency


def test_a_row_timed_alone_in_an_interleaved_run_says_so_in_its_note():
    row = Row(engine="ort", status="ok", precision_requested="fp32", precision="fp32",
              latency_ms=Latency.from_values([1.0, 1.0, 1.0]))
    assert row.note() == ""
    row.schedule = "sequential: its launcher cannot keep it loaded"
    assert row.note() == "sequential: its launcher cannot keep it loaded"
    assert "schedule" not in row.settings  # the coordinator's, not the engine's
