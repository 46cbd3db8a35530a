"""docs/options.md, the `e2e bench` options reference, made from the command itself (its options
come from the fields of `BenchConfig`'s sections): `python -m coordinator.cli.options_doc > docs/options.md`."""
import re
from typing import Dict, List

import typer
from rich.text import Text

DEFAULT = re.compile(r"\s*\[default: (.*)\]$", re.S)


def _cell(text: str) -> str:
    """Text for one cell of a markdown table: on one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def options_markdown() -> str:
    """The markdown page: a table per section of options of `e2e bench`, a row per option (flags
    and value type, default, help), in the order `e2e bench --help` lists them."""
    from coordinator.cli.app import app
    from coordinator.config.bench import SECTIONS

    root = typer.main.get_command(app)
    bench = root.commands["bench"]  # type: ignore[attr-defined]
    ctx = typer.Context(bench, info_name="bench")
    lines = [
        "# `e2e bench` options",
        "",
        "<!-- Generated from the command itself by `python -m coordinator.cli.options_doc > docs/options.md`;",
        "     do not edit: an option's text is its `help` in coordinator/config/sections.py (BenchConfig). -->",
        "",
        _cell(bench.help or ""),
        "",
        "A `--config` file gives these by option name, or nested by section: `timing: {warmup: 2}`.",
    ]
    tables: Dict[str, List[str]] = {}  # by section ("": the command's own options)
    for param in bench.params:
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        flags, text = record
        text = Text.from_markup(text).plain  # Typer's help is rich markup: `\[` is a literal bracket
        found = DEFAULT.search(text)
        default = found.group(1) if found else ""
        meaning = text[:found.start()] if found else text
        rows = tables.setdefault(getattr(param, "rich_help_panel", None) or "", [])
        rows.append(f"| `{_cell(flags)}` | {_cell(default)} | {_cell(meaning)} |")
    for section, rows in tables.items():
        title = f"`{section}`: {_cell(SECTIONS[section].__doc__ or '')}" if section else "The command"
        lines += ["", f"## {title}", "", "| option | default | meaning |", "|---|---|---|", *rows]
    globals_ = [p.get_help_record(typer.Context(root, info_name="e2e")) for p in root.params]
    lines += ["", "Options of `e2e` itself, given before `bench`: " + "; ".join(
        f"`{_cell(flags)}`: {_cell(text).rstrip('.')}" for flags, text in filter(None, globals_)) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(options_markdown(), end="")
