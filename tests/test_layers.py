"""The package's layers: each part imports only the parts below it, and no two parts import
each other -- counting the imports inside functions too, which a circle can hide behind."""

import ast
import itertools
from pathlib import Path

import critic

SOURCE = Path(critic.__file__).parent

# Lowest first; a part may import its own layer's other parts only where LAYERS_ALLOWED says.
LAYERS = [
    {"critic", "critic.errors"},
    {"critic.config", "critic.fileio", "critic.system"},
    {"critic.data"},
    {"critic.models"},
    {"critic.evaluation"},
    {"critic.training"},
    {"critic.inference"},
    {"critic.serving"},
    {"critic.web", "critic.sagemaker", "critic.monitor", "critic.tracking"},
    {"critic.apps"},
    {"critic.cli"},
]
# Within a layer: the page is a client of the endpoint's state; SageMaker's client code uses
# the endpoint's codec and variant names. Never the other way round.
LAYERS_ALLOWED = {
    ("critic.web", "critic.serving"),
    ("critic.sagemaker", "critic.serving"),
    # critic monitor reads what the endpoint captured, with the endpoint's own codec.
    ("critic.monitor", "critic.serving"),
}


def part(module: str) -> str:
    pieces = module.split(".")
    return ".".join(pieces[:2])


def imports() -> dict[str, set[str]]:
    """Each part of critic (a top-level module or a subpackage) and the parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE).with_suffix("")
        module = ".".join(("critic", *relative.parts)).removesuffix(".__init__")
        source = part(module)
        graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "critic" or name.startswith("critic."):
                    target = part(name)
                    if target != source:
                        graph[source].add(target)
    return graph


def rank(module: str) -> int:
    for number, layer in enumerate(LAYERS):
        if module in layer:
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_part_of_the_package_has_a_layer():
    for module in imports():
        rank(module)


def test_no_part_imports_a_part_above_it():
    upward = [
        f"{source} -> {target}"
        for source, targets in imports().items()
        for target in targets
        if rank(target) > rank(source)
        or (rank(target) == rank(source) and (source, target) not in LAYERS_ALLOWED)
    ]
    assert upward == []


def test_there_is_no_import_circle_even_through_imports_inside_functions():
    graph = imports()
    for first, second in itertools.permutations(graph, 2):
        assert not (second in graph[first] and first in graph[second]), (first, second)

    # Longer circles: a depth-first search for a back edge.
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in graph.get(node, ()):
            assert state.get(target) != "open", " -> ".join([*path, node, target])
            if target not in state:
                visit(target, [*path, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])
