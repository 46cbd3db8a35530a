"""The README fits on a few screens and the rest is in docs/, reachable and whole: the options page
is the command's own text, every relative link resolves, and no section of the old README is lost."""
import re
from pathlib import Path

import yaml

from coordinator.cli.options_doc import options_markdown

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200

# The `##` sections of the 857-line README that issue 27 moved to docs/ (kept as a heading of the
# page that holds them, at any level): a page deleted or a section dropped later fails here.
MOVED_SECTIONS = (
    "Engines",
    "`e2e bench`",
    "`--dataset`: a trained example",
    "Bring your own model",
    "Docker",
    "Concepts",
    "The cache",
    "How e2e measures",
    "Throughput: scenarios and sweeps",
    "Fleet mode: one command over many machines (Ray)",
    "The runner protocol",
    "Report",
    "When outputs differ: `e2e explain`",
    "Extending e2e",
    "An engine",
    "Tests",
    "Test images",
)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _pages():
    return [README, *sorted(DOCS.glob("*.md"))]


def test_docs_options_md_is_generated_from_the_bench_command():
    assert (DOCS / "options.md").read_text() == options_markdown(), (
        "docs/options.md differs from `e2e bench`'s options: regenerate it with "
        "`python -m coordinator.cli.options_doc > docs/options.md`")


def test_the_readme_fits_on_a_few_screens():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move sections to docs/ (at most {README_MAX_LINES})"


def test_every_relative_link_of_the_readme_and_docs_points_to_a_file():
    bad = []
    for page in _pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            if "#" in target:
                bad.append(f"{page.relative_to(ROOT)}: {target} (an anchor: link the page, anchors break silently)")
            elif not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
    assert not bad, "\n".join(bad)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t).resolve() for t in LINK.findall(README.read_text())}
    assert not [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]


def test_every_section_of_the_old_readme_is_still_a_heading_somewhere():
    headings = {m.group(1).strip() for page in _pages()
                for m in re.finditer(r"^#{1,3} (.+)$", page.read_text(), re.M)}
    assert not [s for s in MOVED_SECTIONS if s not in headings]


def test_the_readme_engine_table_names_every_runner_and_says_what_its_manifest_verified():
    rows = dict(re.findall(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", README.read_text(), re.M))
    for folder in sorted((ROOT / "runners").glob("*/manifest.yaml")):
        engine = folder.parent.name
        assert engine in rows, f"README's engine table lacks {engine}"
        verified = yaml.safe_load(folder.read_text()).get("verified")
        if verified is None:  # the manifest does not say
            continue
        verified = [verified] if isinstance(verified, str) else verified
        said = rows[engine].strip()
        if verified == ["never"]:
            assert said == "never run", (engine, said)
        else:
            assert said.split(" (")[0] == ", ".join(verified), (engine, said, verified)
