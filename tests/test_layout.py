"""The package's shape, as rules that fail the build: import contracts (import-linter, in
`make lint`), module and function sizes, and "only cli/ prints or exits".

The import contracts live in pyproject.toml ([tool.importlinter]). The tests here break one
rule at a time in a copy of the package and check that `lint-imports` then fails naming it,
so a contract that stopped checking anything would fail this file.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seqmask"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Typer declares a command's options in its signature, so a command function is as long
# as its options; their bodies are short (cli/__init__.py says so).
TYPER_COMMANDS = ROOT / "seqmask" / "cli"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package and its import contracts, to break one rule in."""
    shutil.copytree(PACKAGE, tmp_path / "seqmask", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("data/sequences.py", "import keras", "config/ and data/ never import TensorFlow or Keras"),
        ("config/__init__.py", "import tensorflow", "config/ and data/ never import TensorFlow or Keras"),
        ("model/losses.py", "import seqmask.training.loop", "Layers: cli > api"),
        ("data/labels.py", "import seqmask.run.directory", "Layers: cli > api"),
        ("analysis/evaluate.py", "import seqmask.serving.export", "Only the API imports serving/"),
        ("run/directory.py", "import rich", "Only cli/ prints or exits"),
        ("training/loop.py", "import seqmask.cli._app", "_private modules are imported only from inside"),
    ],
)
def test_breaking_a_rule_fails_lint_imports(package_copy: Path, module: str, line: str, contract: str) -> None:
    path = package_copy / "seqmask" / module
    source = path.read_text()
    # After the module docstring and `from __future__`, which must stay first.
    head, future, rest = source.partition("from __future__ import annotations\n")
    path.write_text(head + future + f"{line}  # noqa\n" + rest)
    result = _lint_imports(package_copy)
    assert result.returncode != 0
    assert contract in result.stdout
    assert "BROKEN" in result.stdout


def test_no_module_is_over_the_size_limit() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert long == {}, f"split these by concept (at most {MAX_MODULE_LINES} lines)"


def test_no_function_is_over_the_size_limit() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if path.is_relative_to(TYPER_COMMANDS) and _is_typer_command(node):
                lines -= node.body[0].lineno - node.lineno  # count the body, not the options
            if lines > MAX_FUNCTION_LINES:
                long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert long == {}, f"split these into named steps (at most {MAX_FUNCTION_LINES} lines)"


def _is_typer_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Call) and ast.unparse(d.func) == "app.command" for d in node.decorator_list)


def _prints_or_exits(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        if name in ("print", "exit", "quit", "sys.exit", "os._exit"):
            return f"{name}()"
    if isinstance(node, ast.Raise) and node.exc is not None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if ast.unparse(raised) in ("SystemExit", "typer.Exit"):
            return f"raise {ast.unparse(raised)}"
    return None


def test_only_cli_prints_or_exits() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {what}"  # type: ignore[attr-defined]
        for path in _modules()
        if not path.is_relative_to(PACKAGE / "cli")
        for node in ast.walk(ast.parse(path.read_text()))
        if (what := _prints_or_exits(node)) is not None
    ]
    assert found == [], "print and exit in seqmask/cli only; the layers below return values or raise SeqmaskError"


def test_the_checks_above_see_what_they_look_for() -> None:
    # The AST checks must match real code, or the tests above could pass on anything.
    tree = ast.parse("import sys\nprint(1)\nsys.exit(2)\nraise SystemExit(3)\n")
    found = sorted(w for n in ast.walk(tree) if (w := _prints_or_exits(n)))
    assert found == ["print()", "raise SystemExit", "sys.exit()"]
    command = ast.parse("@app.command()\ndef f(\n    a,\n) -> None:\n    pass\n").body[0]
    assert isinstance(command, ast.FunctionDef) and _is_typer_command(command)
