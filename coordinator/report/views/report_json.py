"""`report.json`: the typed report itself, versioned (`schema_version`); the data the other
views are made from, and what `load_report` reads back."""
import json
from pathlib import Path

from coordinator.report.document import Report

FILE = "report.json"


def render(report: Report, run_dir: Path) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False, default=str) + "\n"
