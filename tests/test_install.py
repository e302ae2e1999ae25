"""The install files: every imported package declared in pyproject.toml, the locks generated from it, and the
README's commands the ones CI runs."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

CODE = ("src", "pipeline", "benchmarks", "tests")


def _pyproject(repo_root) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def _locked(path) -> dict[str, str]:
    """name -> version of every `name==version` line of a pip-compile lock."""
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", path.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def _pins_no_named_index_serves(text: str) -> list[str]:
    """The `name==version+label` pins of a lock when the lock names no index (`--index-url`, `--extra-index-url`):
    PyPI carries no local version label, so nothing serves those pins to a user who reaches only PyPI."""
    if re.search(r"^\s*(--index-url|--extra-index-url|-i)\b", text, flags=re.MULTILINE):
        return []
    return re.findall(r"^[A-Za-z0-9_.\-]+==[^\s;+]+\+[^\s;]+", text, flags=re.MULTILINE)


def _third_party_imports(repo_root) -> set[str]:
    modules = set()
    for folder in CODE:
        for path in (repo_root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {module for module in modules if module not in sys.stdlib_module_names and module not in CODE}


def test_every_imported_package_is_declared(repo_root):
    project = _pyproject(repo_root)["project"]
    declared = {
        canonicalize_name(Requirement(line).name)
        for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    }
    distributions = packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in _third_party_imports(repo_root)
        if not {canonicalize_name(name) for name in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


@pytest.mark.parametrize(
    ("lock", "groups"), [("requirements.txt", ["runtime"]), ("requirements-dev.txt", ["runtime", "dev"])]
)
def test_each_lock_pins_what_pyproject_declares_within_its_range(repo_root, lock, groups):
    project = _pyproject(repo_root)["project"]
    declared = {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}
    pins = _locked(repo_root / lock)
    for group in groups:
        for line in declared[group]:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} does not pin {name}: regenerate it with `bash .ci/lock`"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside pyproject's {requirement.specifier}: `bash .ci/lock`"
            )


def test_the_two_locks_agree_and_the_runtime_lock_holds_no_test_tools(repo_root):
    runtime, dev = _locked(repo_root / "requirements.txt"), _locked(repo_root / "requirements-dev.txt")
    assert {name: dev[name] for name in runtime} == runtime
    assert not {"pytest", "ruff", "pip-tools"} & set(runtime)
    (torch,) = re.findall(r"^torch==(\S+)$", (repo_root / ".ci" / "torch-cpu.txt").read_text(), flags=re.MULTILINE)
    assert Version(runtime["torch"]).public == torch, "torch is held to the version of .ci/torch-cpu.txt"
    cuda = [name for name in dev if name.startswith(("nvidia-", "cuda-")) or name == "triton"]
    assert not cuda, f"a CUDA build of torch crept into the locks ({cuda}): torch's own metadata names those"


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_each_lock_pins_only_versions_the_public_index_carries(repo_root, lock):
    assert not _pins_no_named_index_serves((repo_root / lock).read_text()), (
        f"{lock} pins a local version PyPI lacks, and names no index that serves it: `bash .ci/lock`"
    )


def test_a_local_version_passes_only_where_the_lock_names_its_index():
    lock = "numpy==2.4.6\n    # via bn-mnist (pyproject.toml)\ntorch==2.13.0+cpu\n    # via bn-mnist (pyproject.toml)\n"
    assert _pins_no_named_index_serves(lock) == ["torch==2.13.0+cpu"]
    assert _pins_no_named_index_serves(lock.replace("+cpu", "")) == []
    index = "--extra-index-url https://download.pytorch.org/whl/cpu\n\n"
    assert _pins_no_named_index_serves(index + lock) == []


def test_ci_runs_the_readmes_test_command(repo_root):
    readme, ci = (repo_root / "README.md").read_text(), (repo_root / ".ci" / "run").read_text()
    readme = re.sub(r" \\\n\s*", " ", readme)  # a command continued over lines is one command
    install_and_test = r"^python3 -m venv \.venv && \. \.venv/bin/activate && (pip install -r requirements-dev\.txt.*)$"
    (command,) = re.findall(install_and_test, readme, flags=re.MULTILINE)
    assert "ruff format --check ." in command
    assert command.replace("pip install -r", "pip install -q -r") in ci
