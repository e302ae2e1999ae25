"""dvc.yaml declares every source file that can change a stage's outputs, and no other, so `dvc repro` never skips
a stale stage and never re-runs one for a change that cannot touch it. A stage lists a package's folder when it
imports every module of the package, and the modules it imports otherwise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from src.config import STAGE_PARAMS
from src.training.provenance import TRAINING_CODE

ROOT = Path(__file__).resolve().parent.parent

# Imported by stages, but cannot change what a stage writes, only whether, how or where it writes it (dvc.yaml
# declares the outputs' paths itself).
NEVER_OUTPUT_SHAPING = {
    "src/cli.py": "argument parsing and one-line errors",
    "src/config.py": "validation of params.yaml, whose values are DVC params",
    "src/atomic.py": "how files are written, not what",
    "src/errors.py": "the library's error type",
    "src/paths.py": "where the files are, which dvc.yaml names too",
}
# Imported by a stage for something other than its numbers.
RAW_FILES_ONLY = {"src/data/idx.py": "parses the raw IDX files, which only download and preprocess read"}
ALSO_EXEMPT = {stage: RAW_FILES_ONLY for stage in ("tune", "train", "sweep", "edge", "evaluate")}


def _local_imports(path: Path) -> set[str]:
    """Repository files that `path` imports: src.x.y → src/x/y.py, and the __init__.py of every package on the way."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]  # from src.x import y
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in ("src", "pipeline"):
                found |= {"/".join(parts[:k]) + "/__init__.py" for k in range(1, len(parts) + 1)}
                found.add("/".join(parts) + ".py")
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


def _code_deps(stage: str) -> tuple[set[str], set[str]]:
    """The source files and the source folders `stage` declares."""
    deps = [dep for dep in _stages()[stage]["deps"] if isinstance(dep, str) and dep.startswith(("src", "pipeline"))]
    folders = {dep for dep in deps if (ROOT / dep).is_dir()}
    return set(deps) - folders, folders


def _modules(folder: str) -> set[str]:
    """A package's modules, less its doors: __init__ (a docstring), __main__ (a command line no stage runs)."""
    doors = ("__init__.py", "__main__.py")
    return {str(path.relative_to(ROOT)) for path in (ROOT / folder).glob("*.py") if path.name not in doors}


def _imported(stage: str) -> set[str]:
    """What the stage's module imports, all the way down, less package doors and the exempt files."""
    module_file = _stages()[stage]["cmd"].split()[2].replace(".", "/") + ".py"  # "python -m pipeline.x ..."
    exempt = set(NEVER_OUTPUT_SHAPING) | set(ALSO_EXEMPT.get(stage, {}))
    return {file for file in _import_closure(module_file) if not file.endswith("__init__.py")} - exempt


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_source_file_a_stage_imports_is_a_declared_dependency(stage):
    files, folders = _code_deps(stage)
    covered = files | {module for folder in folders for module in _modules(folder)}
    undeclared = _imported(stage) - covered
    assert not undeclared, f"dvc.yaml stage {stage!r} imports {sorted(undeclared)} without declaring them in deps"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_declared_source_file_and_folder_is_one_the_stage_imports_whole(stage):
    # a stale dep re-runs a stage for a change that cannot touch its outputs
    files, folders = _code_deps(stage)
    imported = _imported(stage)
    assert not files - imported, f"{stage!r} declares {sorted(files - imported)}, which it does not import"
    partial = {folder: sorted(_modules(folder) - imported) for folder in folders if _modules(folder) - imported}
    assert not partial, f"{stage!r} declares folders whose modules it does not all import: {partial}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_a_folder_is_declared_wherever_the_stage_imports_all_of_it(stage):
    files, _ = _code_deps(stage)
    for folder in {str(Path(file).parent) for file in files if file.startswith("src/") and file.count("/") == 2}:
        listed = {file for file in files if str(Path(file).parent) == folder}
        assert listed != _modules(folder), f"{stage!r}: list {folder} instead of its {len(listed)} modules"


def test_the_closure_follows_imports_through_packages():
    # pipeline/train.py never names src.engine.affine; it arrives through the runner, the trainer and the network
    closure = _import_closure("pipeline/train.py")
    assert {"src/engine/affine.py", "src/tracking/runs.py", "src/engine/__init__.py"} <= closure


def test_bytecode_caches_are_not_part_of_a_folder_dependency():
    assert {"__pycache__/", "*.pyc"} <= set((ROOT / ".dvcignore").read_text().splitlines())


def test_the_report_template_is_a_dependency_of_evaluate():
    # not an import, so the closure cannot find it: the report's folder carries it
    _, folders = _code_deps("evaluate")
    assert (ROOT / "src/report/templates/report.md.j2").exists() and "src/report" in folders


def test_the_tuning_studys_name_digests_every_file_that_trains_a_trial():
    # a change to any of them must start a fresh Optuna study instead of resuming one run with other code
    digested = {str(path.relative_to(ROOT)) for path in TRAINING_CODE}
    trains = {file for file in _import_closure("src/engine/trainer.py") if not file.endswith("__init__.py")}
    trains -= set(NEVER_OUTPUT_SHAPING) | set(RAW_FILES_ONLY)
    assert trains <= digested, f"src.training.provenance.TRAINING_CODE misses {sorted(trains - digested)}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_the_params_dvc_lists_for_a_stage_are_the_ones_its_identity_derives_from(stage):
    assert tuple(_stages()[stage].get("params", ())) == STAGE_PARAMS[stage]


def test_every_result_file_evaluate_reads_is_in_git_not_only_in_dvcs_cache():
    # a reviewer with a fresh clone and no DVC remote can recompute every per-seed and per-image number a verdict uses
    stages = _stages()
    in_git = set()
    for stage in stages.values():
        for out in stage.get("outs", []):
            if isinstance(out, dict):
                path, options = next(iter(out.items()))
                if options.get("cache") is False:
                    in_git |= {path.replace("${item}", variant) for variant in ("vanilla", "bn")}
    read = {dep for dep in stages["evaluate"]["deps"] if dep.startswith("results/")}
    assert read and not read - in_git, f"evaluate reads {sorted(read - in_git)} from DVC's cache only"
