"""Tests mirror the code: every source module has a unit-test module of its own at the same place under tests/
(src/engine/trainer.py -> tests/engine/test_trainer.py), every stage a test that runs it, every benchmark a test of
its contract; every test module is one of those or a contract or fault test named here. A test is found where the
code it tests lives, and a test module named for a module that is gone, or for none, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Modules with no test module of their own, each with why.
NO_TEST_MODULE = {
    "src/errors.py": "one exception class",
}
# Each stage module, the test module that runs it, and the text there that runs it.
STAGE_TESTS = {
    "pipeline/download.py": ("pipeline/test_preprocess.py", '"-m", "pipeline.download"'),  # on the real MNIST files
    "pipeline/preprocess.py": ("pipeline/test_preprocess.py", '"dvc", "repro", "preprocess"'),  # download, then this
    "pipeline/tune.py": ("pipeline/test_tune.py", "from pipeline import tune"),
    "pipeline/train.py": ("pipeline/test_train.py", "from pipeline import train"),
    "pipeline/sweep.py": ("pipeline/test_sweep.py", "from pipeline import sweep"),
    "pipeline/edge.py": ("pipeline/test_edge.py", "from pipeline import edge"),
    "pipeline/evaluate.py": ("pipeline/test_evaluate.py", "from pipeline import evaluate"),
}
# Test modules at the top of tests/ that are neither a source module's nor a stage's, and what they hold.
CONTRACT_AND_FAULT_TESTS = {
    "test_layout.py": "this contract: tests mirror the code",
    "test_layering.py": "the packages of src/ are layered: each imports only those below it",
    "test_code_shape.py": "the code's shape: module and function sizes, loose parameters, no import side effects",
    "test_pipeline_deps.py": "dvc.yaml declares every source file and param that can change a stage's outputs",
    "test_dvc_plots.py": "dvc.yaml's plots render, the report's figures as images",
    "test_readme.py": "the README's results are the report's, and it stays short",
    "test_install.py": "what pyproject.toml declares and the locks pin",
    "test_package.py": "importing the library changes no environment",
    "test_reliability.py": "faults and bad input tried on every stage and entry point",
    "test_resume.py": "train@ and sweep@ killed after a checkpoint resume bit for bit",
    "test_e2e_train.py": "both variants trained on the real MNIST files",
    "test_mlflow_ui.py": "MLflow's web UI shows the stage runs first, the member runs apart, and a seed's model",
    "test_optuna_dashboard.py": "optuna-dashboard names the tuning objective and tells tuning from the sweep's queue",
    "test_slurm.py": "the SLURM job array of docs/many-machines.md, submitted to a real one-node cluster, shares a "
    "PostgreSQL-backed sweep",
    "test_experiments.py": "the experiment loop end to end: queued DVC experiments into the one MLflow store, the "
    "champion rule, the DVC metrics' size, results and an experiment shared through a git and a DVC remote",
}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _imports(test_module: Path) -> set[str]:
    """The dotted names of the repository modules `test_module` imports (`from src.x import y` gives src.x.y)."""
    found = set()
    for node in ast.walk(ast.parse(test_module.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def mirror_of(source: Path) -> Path:
    """src/a/b.py -> tests/a/test_b.py; benchmarks/b.py -> tests/benchmarks/test_b.py; src/b.py -> tests/test_b.py."""
    parts = source.relative_to(ROOT).parts
    inside = parts[1:-1] if parts[0] == "src" else parts[:-1]
    return TESTS.joinpath(*inside, f"test_{Path(parts[-1]).stem}.py")


def _library(top: str) -> list[Path]:
    """The modules of `top` that hold code: not a package's door (__init__), a command line's (__main__) or exempt."""
    return [
        path
        for path in sorted((ROOT / top).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and _name(path) not in NO_TEST_MODULE
    ]


SOURCES = [*_library("src"), *_library("benchmarks")]
STAGES = _library("pipeline")


@pytest.mark.parametrize("source", SOURCES, ids=_name)
def test_every_source_module_has_a_unit_test_module_at_its_place_that_imports_it(source):
    test_module = mirror_of(source)
    module = ".".join(source.relative_to(ROOT).with_suffix("").parts)
    assert test_module.exists(), f"{_name(source)} has no {_name(test_module)}"
    assert module in _imports(test_module), f"{_name(test_module)} never imports {module}"


@pytest.mark.parametrize("stage", STAGES, ids=_name)
def test_every_stage_has_a_stage_test_that_runs_it(stage):
    assert _name(stage) in STAGE_TESTS, f"{_name(stage)}: name its stage test in STAGE_TESTS"
    test_module, runs_it = STAGE_TESTS[_name(stage)]
    assert runs_it in (TESTS / test_module).read_text(), f"tests/{test_module} does not run {_name(stage)}"


@pytest.mark.parametrize("test_module", sorted(TESTS.rglob("test_*.py")), ids=_name)
def test_every_test_module_tests_a_source_module_a_stage_or_a_named_contract(test_module):
    of_a_source = test_module in {mirror_of(source) for source in SOURCES}
    of_a_stage = str(test_module.relative_to(TESTS)) in {test for test, _ in STAGE_TESTS.values()}
    named = test_module.parent == TESTS and test_module.name in CONTRACT_AND_FAULT_TESTS
    assert of_a_source or of_a_stage or named, (
        f"{_name(test_module)} is named for no source module: move its tests beside the module they test, "
        "or name it in CONTRACT_AND_FAULT_TESTS with what it holds"
    )


def test_the_place_of_a_test_module_mirrors_its_source():
    assert mirror_of(ROOT / "src/engine/trainer.py") == TESTS / "engine" / "test_trainer.py"
    assert mirror_of(ROOT / "src/paths.py") == TESTS / "test_paths.py"
    assert mirror_of(ROOT / "benchmarks/bench_step.py") == TESTS / "benchmarks" / "test_bench_step.py"


def test_every_exemption_and_mapping_names_a_module_that_exists():
    named = [*NO_TEST_MODULE, *STAGE_TESTS]
    assert [module for module in named if not (ROOT / module).exists()] == [], "drop the entries of modules gone"
    stale = [module for module in NO_TEST_MODULE if mirror_of(ROOT / module).exists()]
    assert not stale, f"{stale} have a test module now: drop their exemption"
    assert [name for name in CONTRACT_AND_FAULT_TESTS if not (TESTS / name).exists()] == []
