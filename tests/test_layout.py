"""Tests mirror the code: every source module has a unit-test module of its own, named for it, and every stage a test
that runs it; every test module is one of those or a contract or fault test named here. A test is found where the
code it tests lives, and a test module named for a module that is gone, or for none, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Modules with no test module of their own, each with why.
NO_TEST_MODULE = {
    "src/__init__.py": "the package's docstring",
    "src/errors.py": "one exception class",
    "pipeline/__init__.py": "marks the package; empty",
}
# Each stage module, the test module that runs it, and the text there that runs it.
STAGE_TESTS = {
    "pipeline/download.py": ("test_e2e_preprocess.py", '"-m", "pipeline.download"'),  # on the real MNIST files
    "pipeline/preprocess.py": ("test_e2e_preprocess.py", '"dvc", "repro", "preprocess"'),  # download, then this
    "pipeline/tune.py": ("test_tune_stage.py", "from pipeline import tune"),
    "pipeline/train.py": ("test_train_stage.py", "from pipeline import train"),
    "pipeline/sweep.py": ("test_sweep_stage.py", "from pipeline import sweep"),
    "pipeline/edge.py": ("test_edge_stage.py", "from pipeline import edge"),
    "pipeline/evaluate.py": ("test_evaluate_stage.py", "from pipeline import evaluate"),
}
# Test modules that are neither a source module's nor a stage's, and what they hold.
CONTRACT_AND_FAULT_TESTS = {
    "test_layout.py": "this contract: tests mirror the code",
    "test_code_shape.py": "the code's shape: module and function sizes, loose parameters, no import side effects",
    "test_pipeline_deps.py": "dvc.yaml declares every source file and param that can change a stage's outputs",
    "test_readme.py": "the README's results are the report's",
    "test_install.py": "what pyproject.toml declares and the locks pin",
    "test_package.py": "importing the library changes no environment",
    "test_reliability.py": "faults and bad input tried on every stage and entry point",
    "test_resume.py": "train@ and sweep@ killed after a checkpoint resume bit for bit",
    "test_e2e_train.py": "both variants trained on the real MNIST files",
    "test_mlflow_ui.py": "MLflow's web UI shows a stage's runs and models",
    "test_bench_engine.py": "benchmarks/bench_engine.py",
    "test_bench_sweep.py": "benchmarks/bench_sweep.py",
    "test_bench_defaults.py": "benchmarks/bench_defaults.py",
    "test_experiments.py": "the experiment loop end to end: queued DVC experiments into the one MLflow store, the "
    "champion rule, the DVC metrics' size",
}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _imports(test_module: Path) -> set[str]:
    """The dotted names of the repository modules `test_module` imports (`from src import x` gives src.x)."""
    found = set()
    for node in ast.walk(ast.parse(test_module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


SOURCES = [path for path in sorted(ROOT.glob("src/*.py")) if _name(path) not in NO_TEST_MODULE]
STAGES = [path for path in sorted(ROOT.glob("pipeline/*.py")) if _name(path) not in NO_TEST_MODULE]


@pytest.mark.parametrize("source", SOURCES, ids=_name)
def test_every_source_module_has_a_unit_test_module_named_for_it_that_imports_it(source):
    test_module = TESTS / f"test_{source.stem}.py"
    assert test_module.exists(), f"{_name(source)} has no tests/{test_module.name}"
    assert f"src.{source.stem}" in _imports(test_module), f"tests/{test_module.name} never imports src.{source.stem}"


@pytest.mark.parametrize("stage", STAGES, ids=_name)
def test_every_stage_has_a_stage_test_that_runs_it(stage):
    assert _name(stage) in STAGE_TESTS, f"{_name(stage)}: name its stage test in STAGE_TESTS"
    test_module, runs_it = STAGE_TESTS[_name(stage)]
    assert runs_it in (TESTS / test_module).read_text(), f"tests/{test_module} does not run {_name(stage)}"


@pytest.mark.parametrize("test_module", sorted(TESTS.glob("test_*.py")), ids=lambda path: path.name)
def test_every_test_module_tests_a_source_module_a_stage_or_a_named_contract(test_module):
    name = test_module.name
    of_a_source = (ROOT / "src" / name.removeprefix("test_")).exists()
    of_a_stage = name in {test for test, _ in STAGE_TESTS.values()}
    assert of_a_source or of_a_stage or name in CONTRACT_AND_FAULT_TESTS, (
        f"tests/{name} is named for no source module: move its tests to the module they test, "
        "or name it in CONTRACT_AND_FAULT_TESTS with what it holds"
    )


def test_every_exemption_and_mapping_names_a_module_that_exists():
    named = [*NO_TEST_MODULE, *STAGE_TESTS]
    assert [module for module in named if not (ROOT / module).exists()] == [], "drop the entries of modules gone"
    stale = [module for module in NO_TEST_MODULE if (TESTS / f"test_{Path(module).stem}.py").exists()]
    assert not stale, f"{stale} have a test module now: drop their exemption"
    assert [name for name in CONTRACT_AND_FAULT_TESTS if not (TESTS / name).exists()] == []
