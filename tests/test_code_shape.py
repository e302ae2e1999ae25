"""The codebase keeps the shape a newcomer can read: small modules, short functions, few loose parameters, and no
library module that changes the world merely by being imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("pipeline/*.py")])
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS = 300, 50, 6
# A module may pass MAX_MODULE_LINES when splitting it would cut one concern in two: it is named here, with its concern.
ONE_CONCERN_PAST_THE_GUIDELINE = {
    "src/config.py": "params.yaml's schema, one typed section per stage, with its cross-field checks and error lines",
    "src/analysis/stats.py": "the paired tests, intervals, corrections and verdicts every claim and map cell rests on",
}


def _functions(tree: ast.AST):
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_module_is_over_300_lines_unless_named_with_the_one_concern_it_holds(path):
    lines = len(path.read_text().splitlines())
    if _name(path) in ONE_CONCERN_PAST_THE_GUIDELINE:
        assert lines > MAX_MODULE_LINES, f"{_name(path)} is back under {MAX_MODULE_LINES} lines: drop its exemption"
    else:
        assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines; split it along its jobs"


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_function_is_over_50_lines_or_takes_more_than_6_loose_parameters(path):
    problems = []
    for function in _functions(ast.parse(path.read_text())):
        length = function.end_lineno - function.lineno + 1
        if length > MAX_FUNCTION_LINES:
            problems.append(f"{function.name}: {length} lines")
        arguments = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
        loose = [argument.arg for argument in arguments if argument.arg not in ("self", "cls")]
        if len(loose) > MAX_PARAMETERS:
            problems.append(f"{function.name}: {len(loose)} parameters ({', '.join(loose)})")
    assert not problems, f"{_name(path)}: " + "; ".join(problems)


def _side_effects(tree: ast.Module) -> list[str]:
    """Top-level statements of a module that act when it is imported: calls, and anything but definitions."""
    allowed = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
    )
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "__name__ == '__main__'":
            continue  # runs only as `python -m`
        if not isinstance(statement, allowed):
            found.append(f"line {statement.lineno}: {ast.unparse(statement)[:60]}")
    return found


@pytest.mark.parametrize("path", [path for path in SOURCES if path.parts[len(ROOT.parts)] == "src"], ids=_name)
def test_no_library_function_takes_the_whole_config_and_a_stage_name(path):
    # a function takes the section it needs (TrainingRun, SweepConfig, ...): the whole Params plus the name of the
    # section to pick is the config travelling where it is not needed
    found = []
    for function in _functions(ast.parse(path.read_text())):
        arguments = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
        annotations = {argument.arg: ast.unparse(argument.annotation or ast.Constant(None)) for argument in arguments}
        if "Params" in annotations.values() and any("stage" in name for name in annotations):
            found.append(function.name)
    assert not found, f"{_name(path)}: {found} take the whole Params and a stage name; hand them the stage's section"


@pytest.mark.parametrize("path", sorted(ROOT.glob("src/**/*.py")), ids=_name)
def test_importing_a_library_module_changes_nothing(path):
    assert not _side_effects(ast.parse(path.read_text())), (
        f"{_name(path)} acts on import: {_side_effects(ast.parse(path.read_text()))}"
    )


def test_the_side_effect_check_sees_a_call_at_module_level():
    assert _side_effects(ast.parse("import os\nos.environ.setdefault('A', 'b')\n"))
    assert not _side_effects(ast.parse('"""doc"""\nimport os\nX = 1\nif __name__ == "__main__":\n    main()\n'))
