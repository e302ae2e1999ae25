"""The README is the front door: short, narrow, its results table the one the metrics print and the report holds,
and every link in it leads somewhere."""

from __future__ import annotations

import re

from src.metrics.schema import Metrics
from src.metrics.table import glance_table

MAX_LINES, MAX_WIDTH = 250, 120


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_the_readme_is_read_in_five_minutes(repo_root):
    lines = (repo_root / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move details to docs/"
    wide = [number for number, line in enumerate(lines, 1) if len(line) > MAX_WIDTH]
    assert not wide, f"README.md lines {wide} are over {MAX_WIDTH} characters"


def test_the_readmes_results_table_is_the_one_the_committed_metrics_print(repo_root):
    # `python -m src.metrics --markdown` prints it; the evaluate stage writes the same rows into the report
    printed = glance_table(Metrics.read(repo_root / "results" / "metrics.json").claims)
    assert _table_rows((repo_root / "README.md").read_text()) == printed


def test_every_relative_link_of_the_readme_and_docs_leads_to_a_file(repo_root):
    pages = [repo_root / "README.md", *sorted((repo_root / "docs").glob("*.md")), repo_root / "benchmarks/README.md"]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(repo_root)} -> {target}")
    assert not broken, broken
