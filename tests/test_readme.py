"""The README's results are the committed report's, not numbers typed by hand."""

from __future__ import annotations

import re

import pytest


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


@pytest.mark.parametrize(
    "section", ["### What holds", "### At each variant's tuned learning rate", "**Horizon check.**"]
)
def test_every_results_table_row_of_the_readme_is_a_row_of_the_report(repo_root, section):
    readme = (repo_root / "README.md").read_text()
    report = (repo_root / "reports" / "report.md").read_text()
    after = readme.split(section, 1)[1]
    rows = _table_rows(re.split(r"\n(?:#{2,3} |!\[)", after, maxsplit=1)[0])
    assert rows, f"no table under {section!r} in README.md"
    missing = [row for row in rows if row not in report.splitlines()]
    assert not missing, f"README.md rows not in reports/report.md (copy them from the report): {missing}"


def _section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of any level."""
    after = markdown.split(heading + "\n", 1)[1]
    return re.split(r"\n#{2,4} ", "\n" + after, maxsplit=1)[0].strip()


def test_the_readmes_reading_is_the_reports_word_for_word(repo_root):
    # every sentence of the reading is generated from the metrics by the evaluate stage (src/report.py: reading)
    readme = (repo_root / "README.md").read_text()
    report = (repo_root / "reports" / "report.md").read_text()
    assert _section(readme, "### The reading") == _section(report, "### The reading")


def test_the_section_helper_stops_at_the_next_heading():
    text = "## A\none\n### The reading\n- two\n- three\n\n### Next\nfour\n"
    assert _section(text, "### The reading") == "- two\n- three"
