"""The package's layers import only downwards (STYLE.md "As the package grows").

Each sub-package is a stage of the pipeline, in the order the data flows; a module may import
its own layer and the layers below it, never one above, lazily inside a function or not. The
arrows are read from the source with ``ast``, so a test that imports nothing of the project
checks the whole tree; ``python tests/test_layers.py`` prints every arrow that runs upwards.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "sa_hygiene"
LAYERS = ["contract", "source", "state", "engine", "delivery", "web", "pipeline", "demo"]
TOP = len(LAYERS)  # cli.py, dag_support.py, __main__.py: entry points, above everything


def layer_of(module: str) -> int:
    """The layer of ``sa_hygiene.<part>...``; modules directly in the package are entry points."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    if len(parts) == 2 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return TOP


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``sa_hygiene`` import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sa_hygiene"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sa_hygiene")]
    return found


def upward_arrows() -> list[str]:
    arrows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "sa_hygiene." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for line, target in imports_of(path):
            if layer_of(target) > layer_of(module):
                arrows.append(f"{path.relative_to(PACKAGE)}:{line}: {module} -> {target}")
    return arrows


@pytest.mark.unit
def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    assert upward_arrows() == []


@pytest.mark.unit
def test_the_layer_rule_sees_an_upward_import(tmp_path):
    """The check reads lazy imports too: one inside a function counts like one at the top."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sa_hygiene.pipeline.digests import deliver_digests\n")
    assert [m for _, m in imports_of(bad)] == ["sa_hygiene.pipeline.digests"]
    assert layer_of("sa_hygiene.pipeline.digests") > layer_of("sa_hygiene.contract.config")


@pytest.mark.unit
def test_every_sub_package_is_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


if __name__ == "__main__":
    found = upward_arrows()
    print("\n".join(found) or "no upward import arrows")
    sys.exit(1 if found else 0)
