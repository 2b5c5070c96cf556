"""The structure of the package (docs/DESIGN.md, "Modules"): the static import graph of
boxoffice, TYPE_CHECKING and function-local imports included, has no circle; the engine
never imports the API; the Redis plumbing (engine/redis/) never imports the domain; and
no engine component holds the whole Engine, only the parts it was given."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from boxoffice.engine.wiring import Engine

PACKAGE = Path(__file__).resolve().parents[2] / "boxoffice"

# The modules of engine/ that the Redis plumbing may use: shared leaves with no domain
# knowledge (errors, metrics, settings and the rest import nothing of the domain either).
PLUMBING_MAY_USE = {"boxoffice.engine.errors", "boxoffice.engine.metrics", "boxoffice.engine.health",
                    "boxoffice.engine.settings"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, wherever the import statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name` the module.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "boxoffice":
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    graph = {module_name(path): imports_of(path, modules) for path in paths}
    # A package's __init__ runs before its modules: importing a module imports its packages.
    for name in list(graph):
        graph[name] -= {parent for parent in graph if name.startswith(parent + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


GRAPH = import_graph()


def test_the_graph_is_read_from_the_whole_package() -> None:
    assert "boxoffice.engine.wiring" in GRAPH and "boxoffice.api.app" in GRAPH
    assert "boxoffice.engine.holds" in GRAPH["boxoffice.engine.wiring"]
    # TYPE_CHECKING imports count: confirm.py names Holds only for its type hints.
    assert "boxoffice.engine.holds" in GRAPH["boxoffice.engine.confirm"]


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_itself_back_through_others() -> None:
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_nothing_in_the_engine_imports_the_api_or_the_wiring() -> None:
    wrong = {module: sorted(target for target in targets
                            if target.startswith("boxoffice.api") or target == "boxoffice.engine.wiring")
             for module, targets in GRAPH.items() if module.startswith("boxoffice.engine")}
    assert not {module: targets for module, targets in wrong.items() if targets}


def test_the_redis_plumbing_never_imports_the_domain() -> None:
    wrong = {module: sorted(target for target in targets if target.startswith("boxoffice.engine.")
                            and not target.startswith("boxoffice.engine.redis") and target not in PLUMBING_MAY_USE)
             for module, targets in GRAPH.items() if module.startswith("boxoffice.engine.redis")}
    assert not {module: targets for module, targets in wrong.items() if targets}


def references(value: object, depth: int = 2) -> list[object]:
    """What `value` refers to through its attributes, `depth` levels down (lists, tuples,
    sets and dict values followed; callbacks followed to their bound object and closure)."""
    found: list[object] = []
    frontier = [value]
    for _ in range(depth):
        nxt: list[object] = []
        for item in frontier:
            children: list[object] = []
            if isinstance(item, dict):
                children += list(item.values())
            elif isinstance(item, list | tuple | set | frozenset):
                children += list(item)
            if hasattr(item, "__dict__") and not isinstance(item, type):
                children += list(vars(item).values())
            if hasattr(item, "__self__"):
                children.append(item.__self__)
            for cell in getattr(item, "__closure__", None) or ():
                children.append(cell.cell_contents)
            found += children
            nxt += children
        frontier = nxt
    return found


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_no_component_holds_the_whole_engine(ctx: Engine) -> None:
    components = {field.name: getattr(ctx, field.name) for field in dataclasses.fields(ctx)}
    assert len(components) > 15
    for name, component in components.items():
        if name == "tasks":
            continue
        holders = [ref for ref in references(component) if ref is ctx]
        assert not holders, f"Engine.{name} holds the whole Engine"


def test_the_check_would_see_a_component_holding_the_engine() -> None:
    class Holder:
        def __init__(self, engine: object) -> None:
            self.engine = engine

    engine = object()
    assert any(ref is engine for ref in references(Holder(engine)))
    assert any(ref is engine for ref in references(Holder([Holder(engine)]), depth=3))


def test_the_package_holds_no_crash_hook() -> None:
    """The crash tests kill a service at a step through the checkpoint they hand the engine
    (tests/support/crashable.py); the package itself never kills its own process."""
    killers = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
               if "SIGKILL" in path.read_text(encoding="utf-8")]
    assert not killers
