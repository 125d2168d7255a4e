"""The layering is checked, not a convention: import-linter's contracts (pyproject.toml) hold, and
they break when a forbidden import is added. What import-linter cannot express (app.py is a module,
not a package; test modules are many) is checked here on the syntax tree.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.stage import PROJECT_DIR

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("chalicelib", "sandbox", "scripts", "bench", "tests", "infra")


def _copy_project(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(PROJECT_DIR / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_DIR / "pyproject.toml", target)
    return target


def _lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=where, capture_output=True, text=True, check=False
    )


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return _copy_project(tmp_path_factory.mktemp("project"))


def test_the_import_contracts_hold(copy):
    result = _lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, forbidden, contract",
    [
        ("chalicelib/domain/keys.py", "import boto3", "the domain is pure"),
        ("chalicelib/domain/bibs.py", "from chalicelib.adapters import table", "the domain is pure"),
        ("chalicelib/adapters/storage.py", "from chalicelib.services import search", "chalicelib is layered"),
        ("chalicelib/services/search.py", "import chalice", "chalicelib is deployed alone"),
        ("chalicelib/config.py", "import sandbox.stage", "the sandbox stands beside the app"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, forbidden, contract):
    project = _copy_project(tmp_path)
    _append(project / module, forbidden)
    result = _lint_imports(project)
    assert result.returncode == 1, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_test_module_imports_another_test_module():
    offenders = {
        path.name: sorted(
            name for name in _imported_modules(path) if name.startswith(("tests.test_", "tests.conftest"))
        )
        for path in (PROJECT_DIR / "tests").rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_app_imports_only_chalice_and_chalicelib():
    own = {name.split(".")[0] for name in _imported_modules(PROJECT_DIR / "app.py")}
    assert not own & {"sandbox", "tests", "bench", "scripts", "boto3", "botocore"}, own
