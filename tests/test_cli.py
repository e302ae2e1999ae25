"""A mistake on the command line of any entry point is one line `error: ...` on stderr and exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from src.cli import OneLineParser, UsageError, report_user_errors
from tests.entry_points import ENTRY_POINTS


def test_a_parser_mistake_is_a_usage_error_not_an_exit():
    parser = OneLineParser()
    parser.add_argument("--count", type=int)
    with pytest.raises(UsageError, match=r"^argument --count: invalid int value: 'many'$"):
        parser.parse_args(["--count", "many"])


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_an_unknown_flag_stops_every_entry_point_with_one_line(entry_point, capsys):
    main, argv = ENTRY_POINTS[entry_point]
    with pytest.raises(SystemExit) as stopped:
        report_user_errors(lambda: main([*argv, "--no-such-flag"]))
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == "error: unrecognized arguments: --no-such-flag\n"
    assert captured.out == ""


def test_a_bad_variant_is_one_line_naming_it_and_the_choices(repo_root):
    stage = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--variant", "nope"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stage.returncode == 2
    (line,) = stage.stderr.splitlines()
    assert re.fullmatch(r"error: argument --variant: invalid choice: 'nope' \(choose from '?vanilla'?, '?bn'?\)", line)
    assert stage.stdout == ""
