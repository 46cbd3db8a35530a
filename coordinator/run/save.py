"""Saving the report as rows end: nothing measured is lost, a full disk included."""
import json
from pathlib import Path

from shared.errors import E2EError

from coordinator.errors import DISK_FULL, disk_full
from coordinator.report.document import Report
from coordinator.report.views import write_report


def save(report: Report, run_dir: Path, views: bool = True) -> None:
    """Write the report; on a full disk, one line saying what report.json still holds (each
    file is replaced whole, so the last complete one stays)."""
    try:
        write_report(report, run_dir, views=views)
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        try:
            saved = len(json.loads((run_dir / "report.json").read_text())["results"])
        except (OSError, ValueError, KeyError, TypeError):
            saved = 0
        raise E2EError(f"{disk_full(e)}: {run_dir / 'report.json'} holds {saved} of the {len(report.results)} "
                       f"row(s) measured; free some space, then `e2e bench --resume {run_dir}` runs the rest"
                       ) from None
