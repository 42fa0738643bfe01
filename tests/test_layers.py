"""The package's layout, read from its imports: layers that import only downwards, no circle, and no
module reaching into another's private names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from helpers.core import config
from tests.support import helpers_modules, import_graph

# Bottom to top: a module may import its own layer and the ones before it.
LAYERS = ("core", "servers", "ml", "serve", "orchestrate", "monitor", "course")


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_every_module_sits_in_a_layer():
    loose = [name for name in helpers_modules() if name and name.split(".")[0] not in LAYERS]
    assert loose == [], f"modules outside the layers {LAYERS}: {loose}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module
        for target in targets
        if layer(target) > layer(module)
    )


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each circle of imports found by a depth-first walk, as ``a -> b -> a``."""
    found: list[str] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                found.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return found


def test_imports_only_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_no_module_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_checks_see_an_upward_import_and_a_circle():
    graph = {
        "servers.processes": {"course.environment"},
        "serve.batch": {"serve.batch_spark"},
        "serve.batch_spark": {"serve.batch"},
        "course.environment": set(),
    }
    assert upward_imports(graph) == ["servers.processes imports course.environment"]
    assert cycles(graph) == ["serve.batch -> serve.batch_spark -> serve.batch"]


def test_the_servers_layer_imports_nothing_of_a_chapter():
    reached = {
        target for module, targets in import_graph().items() if module.startswith("servers") for target in targets
    }
    assert {target.split(".")[0] for target in reached} <= {"core", "servers"}, reached


def _private_uses(source: str) -> list[str]:
    """``module._name`` and ``from helpers.x import _name`` for helpers modules imported in ``source``."""
    tree = ast.parse(source)
    modules = set(helpers_modules())
    bound: dict[str, str] = {}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
            package = node.module.removeprefix("helpers").removeprefix(".")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    uses.append(f"from {node.module} import {alias.name}")
                if f"{package}.{alias.name}".lstrip(".") in modules:
                    bound[alias.asname or alias.name] = f"{package}.{alias.name}".lstrip(".")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            uses.append(f"{node.value.id}.{node.attr}")
    return uses


def test_the_private_name_check_sees_one():
    uses = _private_uses(
        "from helpers.monitor import drift\nfrom helpers.serve.batch import _ride_ids\ndrift._report()"
    )
    assert sorted(uses) == ["drift._report", "from helpers.serve.batch import _ride_ids"]


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        source = "".join(cell["source"])
        # A cell that writes a file other than Python (07's Dockerfile) holds no Python to read.
        writes_other = source.startswith("%%") and not source.split("\n", 1)[0].rstrip().endswith(".py")
        if cell["cell_type"] == "code" and not writes_other:
            # Shell and magic lines are not Python: each becomes a `pass` where it stands.
            lines += [
                line if not line.lstrip().startswith(("!", "%")) else line[: len(line) - len(line.lstrip())] + "pass"
                for line in source.splitlines()
            ]
    return "\n".join(lines)


def test_no_caller_uses_another_modules_private_names():
    sources = {name: path.read_text() for name, path in helpers_modules().items()}
    sources |= {
        str(path.relative_to(config.REPO_ROOT)): path.read_text()
        for path in (config.REPO_ROOT / "orchestration").rglob("*.py")
    }
    sources |= {path.name: _notebook_code(path) for path in (config.REPO_ROOT / "notebooks").glob("*.ipynb")}
    found = {name: uses for name, source in sources.items() if (uses := _private_uses(source))}
    assert found == {}
