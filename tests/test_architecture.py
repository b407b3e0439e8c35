"""The package's layout (docs/architecture.md): no import circles, no two modules of one
name, and modules that fit in a reader's head."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "pmrlhf"
MAX_LINES = 300
LONGER = {  # module (relative to src/pmrlhf) -> why it may exceed MAX_LINES
    "_validation.py": "every config's check_* helpers, one module by design",
    "lm_experiments/models/sequences.py": "one algorithm: a prompt's key/value cache shared "
    "by its samples, in sampling and in the gradient pass alike",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every pmrlhf module ``name`` imports: at the top, inside functions, and for type
    checking alike (a circle through a lazy import is a circle a reader still walks)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        found |= {target for target in targets if target in modules and target != name}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles():
    assert _circles(_graph()) == []


def test_the_circle_check_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_layers_import_only_downwards():
    """theory <- simulate <- lm_experiments <- report / trl <- cli."""
    rank = {"theory": 0, "simulate": 1, "lm_experiments": 2, "report": 3, "trl": 3, "cli": 4}
    for name, imported in _graph().items():
        layer = name.split(".")[1] if name.count(".") else None
        for target in imported:
            other = target.split(".")[1] if target.count(".") else None
            if layer in rank and other in rank and layer != other:
                assert rank[other] < rank[layer], f"{name} imports {target}"


def _top_level_names(path: Path) -> tuple[set[str], set[str]]:
    """(names ``path`` imports from elsewhere, names it defines), at its top level."""
    imported, defined = set(), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            imported |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {target.id for target in targets if isinstance(target, ast.Name)}
    return imported, defined


def test_names_are_imported_from_the_module_that_defines_them():
    """No module but a package's ``__init__`` (the public API) passes on what it imported:
    every name has one home (src, tests, benchmarks and examples alike)."""
    modules = _modules()
    names = {name: _top_level_names(path) for name, path in modules.items()}
    root = SRC.parent
    passed_on = []
    for folder in ("src", "tests", "benchmarks", "examples"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or (node.level and folder != "src"):
                    continue
                if node.level:
                    own = ".".join(path.relative_to(SRC).with_suffix("").parts)
                    base = own.split(".")[: -node.level]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source not in modules or modules[source].name == "__init__.py":
                    continue
                imported, defined = names[source]
                passed_on += [
                    f"{path.relative_to(root)}:{node.lineno} {source}.{alias.name}"
                    for alias in node.names
                    if alias.name in imported - defined and f"{source}.{alias.name}" not in modules
                ]
    assert passed_on == []


def test_no_two_modules_share_a_name():
    names = [p.name for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_modules_fit_on_a_few_screens():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert set(long) <= set(LONGER), {k: v for k, v in long.items() if k not in LONGER}


def test_the_language_model_layer_is_laid_out_by_job():
    layer = PACKAGE / "lm_experiments"
    rooms = {p.name for p in layer.iterdir() if (p / "__init__.py").exists()}
    assert rooms == {"models", "data", "train", "evaluate", "commands"}
    assert [p.name for p in layer.glob("*.py")] == ["__init__.py"]
    assert (layer / "train" / "rl.py").exists()  # the RL update
    assert (layer / "evaluate" / "optima.py").exists()  # the exact optimum
    assert sorted(p.stem for p in (layer / "data" / "builtin_tasks").glob("*.yaml"))
