"""The two packages: the engine (calc) never imports the site adapter (calc.site), writes
no HTML, and no module imports another that imports it back."""

import ast
from pathlib import Path

CALC = Path(__file__).resolve().parents[2] / "calc"


def imports() -> dict[str, set[str]]:
    """Each module of calc and the calc modules it imports, anywhere in its body."""
    out = {}
    for path in CALC.rglob("*.py"):
        name = ".".join(path.relative_to(CALC.parent).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "calc":
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "calc"}
        out[name] = found
    return {name: {d for d in deps if d in out and d != name} for name, deps in out.items()}


def test_the_engine_never_imports_the_site():
    for name, deps in imports().items():
        if not name.startswith("calc.site"):
            assert not {d for d in deps if d.startswith("calc.site")}, name


def test_no_import_circle():
    graph = imports()
    done: set[str] = set()

    def visit(name: str, path: tuple):
        assert name not in path, " -> ".join(path + (name,))
        if name in done:
            return
        for dep in graph[name]:
            if dep != "calc":  # the package's own __init__ re-exports; it is imported first by all
                visit(dep, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_imports_are_at_the_top_of_each_module():
    for path in CALC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{path.name}: {node.name} imports inside a function"


def test_the_engine_writes_no_markup():
    for path in CALC.rglob("*.py"):
        if "site" not in path.parts:
            text = path.read_text()
            for tag in ("<td", "<tr", "<table", "<div", "<svg", "<p ", "href="):
                assert tag not in text, f"{path.name} writes {tag}"
