"""A mistake on the command line of any entry point is one line `error: ...` on stderr and exit status 2."""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.cli import INTERRUPTED, OneLineParser, UsageError, report_user_errors
from tests.entry_points import ENTRY_POINTS


def test_a_parser_mistake_is_a_usage_error_not_an_exit():
    parser = OneLineParser()
    parser.add_argument("--count", type=int)
    with pytest.raises(UsageError, match=r"^argument --count: invalid int value: 'many'$"):
        parser.parse_args(["--count", "many"])


def _runs_as_a_program(path: Path) -> bool:
    """Whether the module has an `if __name__ == "__main__":` block at its top level."""
    return any(
        isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", "'__main__' == __name__")
        for node in ast.parse(path.read_text()).body
    )


def test_every_module_that_runs_as_a_program_is_an_entry_point(repo_root):
    programs = {
        ".".join(path.relative_to(repo_root).with_suffix("").parts).removesuffix(".__main__")  # python -m src.tune
        for top in ("src", "pipeline", "benchmarks")
        for path in (repo_root / top).rglob("*.py")
        if _runs_as_a_program(path)
    }
    assert programs == set(ENTRY_POINTS)


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


def test_ctrl_c_is_one_line_and_exit_status_130_not_a_traceback(tmp_path):
    ready = tmp_path / "ready"
    program = (
        "import pathlib, time; from src.cli import report_user_errors; "
        f"report_user_errors(lambda: (pathlib.Path({str(ready)!r}).touch(), time.sleep(60)))"
    )
    stage = subprocess.Popen(
        [sys.executable, "-c", program], cwd=Path(__file__).parents[1], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stage.send_signal(signal.SIGINT)
    _, err = stage.communicate(timeout=30)
    assert stage.returncode == 130
    assert err == INTERRUPTED + "\n"
