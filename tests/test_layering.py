"""The packages of src/ are layered: each imports only the packages below it (and the modules at src/'s top, which
import no package), so data flows one way. Each package's __init__.py says what it owns and what it may import, and
the code holds to what it says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
# bottom to top; packages in one tier are siblings and import neither each other
TIERS = (
    ("data",),
    ("engine",),
    ("stores", "thesis"),
    ("tracking",),
    ("training",),
    ("results",),
    ("tune", "sweep"),
    ("analysis",),
    ("metrics",),
    ("report",),
)
PACKAGES = {package: tier for tier, packages in enumerate(TIERS) for package in packages}


def _imported_packages(path: Path) -> set[str]:
    """The src packages (and top-level modules, as "") that the module at `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "src" else [f"src.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("src.")}
    return {name if name in PACKAGES else "" for name in found}


def _may_import(package: str) -> set[str]:
    return {other for other, tier in PACKAGES.items() if tier < PACKAGES[package]}


def test_every_package_of_src_has_its_place_in_the_layers():
    found = {path.parent.name for path in SOURCE.glob("*/__init__.py")}
    assert found == set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_packages_below_it(package):
    above = {}
    for path in sorted((SOURCE / package).glob("*.py")):
        wrong = _imported_packages(path) - _may_import(package) - {"", package}
        if wrong:
            above[path.name] = sorted(wrong)
    assert not above, f"src/{package} imports packages that are not below it: {above}"


@pytest.mark.parametrize("module", sorted(SOURCE.glob("*.py")), ids=lambda path: path.name)
def test_the_modules_at_the_top_of_src_import_no_package(module):
    assert _imported_packages(module) <= {""}, f"src/{module.name} imports a package: it is the ground floor"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_packages_door_says_what_it_owns_and_exactly_the_packages_it_may_import(package):
    doc = ast.get_docstring(ast.parse((SOURCE / package / "__init__.py").read_text())) or ""
    said = re.search(r"^It may import: (.*)\.$", doc, re.M)
    assert said and len(doc.splitlines()) >= 2, f"src/{package}/__init__.py: say what it owns, then what it may import"
    named = set() if said[1] == "no package" else {name.strip() for name in said[1].split(",")}
    assert named == _may_import(package), f"src/{package}/__init__.py names {sorted(named)}"


def test_the_check_sees_an_import_from_a_higher_package(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from src.report.figures import save\nfrom src import paths\n")
    assert _imported_packages(module) == {"report", ""}
