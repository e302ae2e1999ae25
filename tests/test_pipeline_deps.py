"""dvc.yaml declares every source file that can change a stage's outputs, so `dvc repro` never skips a stale stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Imported by stages, but cannot change what a stage writes, only whether and how it writes it.
NEVER_OUTPUT_SHAPING = {
    "src/__init__.py": "the package's docstring",
    "src/cli.py": "argument parsing and one-line errors",
    "src/config.py": "validation of params.yaml, whose values are DVC params",
    "src/atomic.py": "how files are written, not what",
    "src/errors.py": "the library's error type",
}
# Imported by a stage for something other than its numbers.
ALSO_EXEMPT = {
    "download": {"src/data.py": "the raw-data path", "src/idx.py": "imported by src/data.py, used by preprocess"},
    "tune": {"src/idx.py": "parses the raw IDX files, which only preprocess reads"},
    "train": {"src/idx.py": "parses the raw IDX files, which only preprocess reads"},
    "sweep": {"src/idx.py": "parses the raw IDX files, which only preprocess reads"},
    "edge": {"src/idx.py": "parses the raw IDX files, which only preprocess reads"},
    "evaluate": {"src/idx.py": "parses the raw IDX files, which only preprocess reads"},
}


def _local_imports(path: Path) -> set[str]:
    """Repository files that `path` imports: src.x → src/x.py, and each package's __init__.py."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.ImportFrom) and node.module in ("src", "pipeline"):
            names += [f"{node.module}.{alias.name}" for alias in node.names]  # from src import tracking
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.split(".")[0] in ("src", "pipeline"):
                found |= {f"{name.split('.')[0]}/__init__.py", name.replace(".", "/") + ".py"}
    return {file for file in found if (ROOT / file).exists()}


def _import_closure(module_file: str) -> set[str]:
    seen, pending = set(), [module_file]
    while pending:
        file = pending.pop()
        if file not in seen:
            seen.add(file)
            pending += _local_imports(ROOT / file)
    return seen


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_source_file_a_stage_imports_is_a_declared_dependency(stage):
    definition = _stages()[stage]
    module_file = definition["cmd"].split()[2].replace(".", "/") + ".py"  # "python -m pipeline.x ..."
    declared = {dep for dep in definition["deps"] if isinstance(dep, str)}
    exempt = set(NEVER_OUTPUT_SHAPING) | set(ALSO_EXEMPT.get(stage, {}))
    undeclared = _import_closure(module_file) - declared - exempt - {"pipeline/__init__.py"}
    assert not undeclared, f"dvc.yaml stage {stage!r} imports {sorted(undeclared)} without declaring them in deps"


def test_the_closure_follows_imports_through_packages():
    # pipeline/train.py never names src.affine; it arrives through src.engine and src.models
    assert "src/affine.py" in _import_closure("pipeline/train.py")
    assert "src/tracking.py" in _import_closure("pipeline/train.py")  # `from src import tracking`


def test_the_report_template_is_a_dependency_of_evaluate():
    # not an import, so the closure cannot find it
    assert "src/templates/report.md.j2" in _stages()["evaluate"]["deps"]


def test_the_tuning_studys_name_digests_every_file_that_trains_a_trial():
    # a change to any of them must start a fresh Optuna study instead of resuming one run with other code
    from src.training.provenance import TRAINING_CODE

    digested = {str(Path(module.__file__).resolve().relative_to(ROOT)) for module in TRAINING_CODE}
    trains = _import_closure("src/engine.py") - set(NEVER_OUTPUT_SHAPING) - {"src/idx.py"}
    assert trains <= digested, f"src.provenance.TRAINING_CODE misses {sorted(trains - digested)}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_declared_source_file_is_one_the_stage_imports(stage):
    # a stale dep re-runs a stage for a change that cannot touch its outputs
    definition = _stages()[stage]
    module_file = definition["cmd"].split()[2].replace(".", "/") + ".py"
    code = {dep for dep in definition["deps"] if isinstance(dep, str) and dep.endswith(".py")}
    assert not code - _import_closure(module_file), f"{stage!r} declares {sorted(code - _import_closure(module_file))}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_the_params_dvc_lists_for_a_stage_are_the_ones_its_identity_derives_from(stage):
    from src.config import STAGE_PARAMS

    assert tuple(_stages()[stage].get("params", ())) == STAGE_PARAMS[stage]
