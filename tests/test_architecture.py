"""The architecture, read from the imports (module level and inside functions) with ``ast``:
arrows point one way (addon -> core -> rigs; inside core from the layers on top to the rig at
the bottom), no module imports itself through others, and what the Blender extension ships
imports no training code and no torch. The folders install as ``au2rig.core``, ``au2rig.addon`` and
``au2rig.rigs``; modules are named here by folder (``core.rig.evaluate``)."""
import ast
from pathlib import Path

import pytest

import build_addon

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "addon", "rigs")
PROJECT = "au2rig"  # the installed package that holds the folders
# core's subpackages, bottom to top: a module imports its own layer and the layers below
CORE_LAYERS = ("util", "rig", "alignment", "animation", "tracking", "datasets", "evaluation", "nets", "training")
# modules of core above every layer: the package itself (it re-exports the layout) and the command line
CORE_TOP = {"core.cli": len(CORE_LAYERS), "core.__main__": len(CORE_LAYERS) + 1}
# the add-on's modules the extension leaves out (its command line; addon/tools/ is left out by folder)
ADDON_ENTRY = {f"addon.{Path(n).stem}" for n in build_addon.ADDON_EXCLUDE}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
            if "__pycache__" not in p.parts}


MODULES = modules()


def absolute_imports(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.append((node.lineno, node.module))
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every module of the repository (or ``torch``) that ``name`` imports, anywhere in the file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            # "from package import module" imports the module; "from module import name" the module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for target in targets:
            target = target.removeprefix(f"{PROJECT}.")
            top = target.split(".")[0]
            if top == "torch":
                found.add("torch")
            elif top in PACKAGES:
                while target not in MODULES and "." in target:  # "import core.rig.load as x" and the like
                    target = target.rsplit(".", 1)[0]
                found.add(target)
    found.discard(name)
    return found


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def rank(name: str) -> float:
    """Position in the one-way order: rigs < core (by layer) < addon."""
    parts = name.split(".")
    if parts[0] == "rigs":
        return -1
    if parts[0] == "addon":
        return 100
    if name in CORE_TOP:
        return CORE_TOP[name]
    if len(parts) == 1:  # core/__init__.py: the layout, re-exported
        return CORE_LAYERS.index("rig")
    return CORE_LAYERS.index(parts[1])


def shipped(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "rigs":
        return True
    if parts[0] == "addon":
        return len(parts) == 2 and name not in ADDON_ENTRY or name == "addon"
    return len(parts) == 1 or parts[1] in build_addon.CORE_RUNTIME + build_addon.TRACKER_RUNTIME


def test_the_import_reader_sees_the_packages():
    assert {"core.rig.evaluate", "core.tracking.track", "core.training.train_generator", "addon.operators",
            "addon.tools.bench", "rigs.bdfm_mesh"} <= set(MODULES)
    assert "core.rig.spec" in GRAPH["core.rig.load"]  # module level, relative
    assert "core.tracking.track" in GRAPH["core.datasets.faces"]  # inside a function


def test_the_folders_are_imported_by_their_installed_names_only():
    """``import core`` would load a second copy of a module beside ``au2rig.core`` (classes that
    differ, state kept twice) and claims a generic name: every file names the package."""
    for path in [p for package in PACKAGES + ("tests",) for p in sorted((ROOT / package).rglob("*.py"))]:
        for line, module in absolute_imports(path):
            assert module.split(".")[0] not in PACKAGES, f"{path.relative_to(ROOT)}:{line} imports {module}"


def test_every_core_module_sits_in_a_layer():
    for name in MODULES:
        if name.startswith("core."):
            assert name in CORE_TOP or name.split(".")[1] in CORE_LAYERS, f"{name}: in no layer of core"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_point_down(name):
    for target in sorted(GRAPH[name] - {"torch"}):
        assert rank(target) <= rank(name), f"{name} imports {target}, which sits above it"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every one is a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_what_the_extension_ships_needs_no_training_code_nor_torch():
    ships = sorted(n for n in MODULES if shipped(n))
    assert "core.rig.evaluate" in ships and "addon.operators" in ships and "core.training.restamp" not in ships
    for name in ships:
        assert "torch" not in GRAPH[name], f"{name} imports torch; the extension ships without it"
        for target in GRAPH[name]:
            assert target == "torch" or shipped(target), f"{name} imports {target}, which the extension does not ship"


def test_the_shipped_addon_imports_core_through_addon_core_only():
    """build_addon.py rewrites the imports of addon/_core.py alone to the vendored core."""
    for name in MODULES:
        if name.startswith("addon") and shipped(name) and name != "addon._core":
            assert not [t for t in GRAPH[name] if t.startswith("core")], f"{name} imports core directly"


def test_core_never_imports_blender_nor_the_addon():
    for name, path in MODULES.items():
        if name.startswith(("core", "rigs")):
            assert not any(t.startswith("addon") for t in GRAPH[name]), name
            assert "import bpy" not in path.read_text(), f"{name} imports bpy"
