"""The exit status of `e2e bench`, for scripts and CI (the README's "Exit status" table).

0: at least one row was measured and no `--fail-on` outcome occurred; 3: no row was measured
(every engine failed, was skipped, ...); 4: a row ended in an outcome named by `--fail-on`.
(1 is a usage error, 2 a malformed command line, 130 an interrupted run.)
"""
from typing import Callable, Dict, List, Tuple

from coordinator.report.document import Report, Row

NOTHING_MEASURED = 3
FAILED_ON = 4

OUTCOMES: Dict[str, Callable[[Row], bool]] = {
    "failed": lambda r: r.status == "failed",
    "timeout": lambda r: r.status == "timeout",
    "unsupported": lambda r: r.status == "unsupported",
    "skipped": lambda r: r.status == "skipped",
    "parity": lambda r: r.parity is not None and not r.parity.passed,
    "noisy": lambda r: r.noisy,
    "imprecise": lambda r: r.imprecise(),
}


def exit_status(report: Report, fail_on: List[str]) -> Tuple[int, str]:
    """(code, one line saying why) for a finished bench."""
    measured = [r for r in report.results if r.status == "ok" and r.latency_ms]
    if not measured:
        statuses = ", ".join(f"{r.engine} {r.status}" for r in report.results) or "no rows"
        return NOTHING_MEASURED, f"no row was measured ({statuses}): see the notes of report.md"
    hits = [f"{r.engine} {r.precision_requested} {name}" for r in report.results
            for name in fail_on if OUTCOMES[name](r)]
    if hits:
        return FAILED_ON, f"--fail-on {','.join(fail_on)}: " + "; ".join(hits)
    return 0, ""
