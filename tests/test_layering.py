"""The package's layering: the library never reaches into its command line (project issue 18).

``openmm_timewarp/cli/`` is argument parsing only and imports the library; nothing else in the
package imports ``openmm_timewarp.cli``, defines a ``main()`` or reads ``sys.argv``.  The checks
read the source (the AST of every module), so they hold for modules no test imports.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Iterator, List, Tuple

from conftest import ROOT

PACKAGE = Path(ROOT) / "openmm_timewarp"
_CLI = re.compile(r"^openmm_timewarp\.cli(\..+)?$")

def library_modules() -> Iterator[Tuple[str, ast.Module]]:
    """(path relative to the package, parsed source) of every module outside ``cli/``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if not relative.startswith("cli/"):
            yield relative, ast.parse(path.read_text(), filename=str(path))


def _module_name(relative: str) -> str:
    parts = ["openmm_timewarp"] + relative[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cli_imports(relative: str, tree: ast.Module) -> List[str]:
    """What a module imports from ``openmm_timewarp.cli``, relative imports and import_module names included."""
    package = _module_name(relative) if relative.endswith("__init__.py") else _module_name(relative).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _CLI.match(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            found += [t for t in targets if _CLI.match(t)][:1]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _CLI.match(node.value):
            found.append(node.value)  # importlib.import_module("openmm_timewarp.cli...")
    return found


def entry_point_uses(tree: ast.Module) -> List[str]:
    """``def main`` and every use of ``sys.argv`` in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            found.append(f"def main (line {node.lineno})")
        elif isinstance(node, ast.Attribute) and node.attr == "argv" and \
                isinstance(node.value, ast.Name) and node.value.id == "sys":
            found.append(f"sys.argv (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "argv" for a in node.names):
            found.append(f"from sys import argv (line {node.lineno})")
    return found


def test_the_checks_see_what_they_look_for():
    # Each form of the mistakes, in a made-up module at openmm_timewarp/run/example.py.
    tree = ast.parse("from ..cli import main\nfrom .. import cli\nimport openmm_timewarp.cli.sample\n"
                     "from ..cli.sample import report\nimportlib.import_module('openmm_timewarp.cli')\n"
                     "from ..peptide import prepare_peptide\nfrom . import folder\n")
    expected = ["openmm_timewarp.cli"] * 3 + ["openmm_timewarp.cli.sample"] * 2
    assert sorted(cli_imports("run/example.py", tree)) == expected
    assert cli_imports("__init__.py", ast.parse("from .cli import main\nfrom .run import sample\n")) == \
        ["openmm_timewarp.cli"]
    tree = ast.parse("import sys\ndef main():\n    return sys.argv[1:]\nfrom sys import argv\n")
    assert sorted(entry_point_uses(tree)) == ["def main (line 2)", "from sys import argv (line 4)", "sys.argv (line 3)"]
    assert entry_point_uses(ast.parse("def train(argv):\n    return argv\n")) == []


def test_the_library_never_imports_the_command_line():
    offenders = {relative: found for relative, tree in library_modules() if (found := cli_imports(relative, tree))}
    assert offenders == {}


def test_no_library_module_is_a_command_line_program():
    offenders = {relative: found for relative, tree in library_modules() if (found := entry_point_uses(tree))}
    assert offenders == {}, ("library modules with a main() or sys.argv: move the command line into "
                             "openmm_timewarp/cli/ (add_parsers + run(args))")
    assert len(list(library_modules())) > 20 and os.path.isdir(PACKAGE / "cli")
