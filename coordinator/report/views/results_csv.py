"""`results.csv`: one row per (engine, precision), for spreadsheets and pandas."""
import csv
import io
import json
from pathlib import Path
from typing import Any, Dict

from coordinator.report.document import Report

FILE = "results.csv"


def render(report: Report, run_dir: Path) -> str:
    """One row per (engine, precision), nested fields flattened (`latency_ms.p50`, ...)."""
    rows = []
    for r in report.rows():
        d = r.to_dict()
        for drop in ("environment", "settings", "error", "parity", "measurement", "per_input_ms"):
            d.pop(drop)
        d["speedup_vs_torch"] = report.speedup(r)  # PyTorch's on the same machine
        d["parity_passed"] = r.parity.passed if r.parity else None
        rows.append(_flat(d))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = (json.dumps(v) if v else "") if isinstance(v, (list, dict)) else v
    return flat
