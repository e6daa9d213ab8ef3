"""Imports show the architecture (docs/architecture.md): read from the source, not run."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
LEAVES = {"seppo.embedded.digits", "seppo.embedded.tokenizer", "seppo.embedded.judge", "seppo.embedded.clips",
          "seppo.embedded.video_judges", "seppo.embedded.budget"}
BUILDERS = {"seppo.embedded.pretrain", "seppo.embedded.pairs", "seppo.embedded.video_pairs", "seppo.embedded.world",
            "seppo.embedded.video_world", "seppo.embedded.video_budget", "seppo.embedded.preference"}
TOOLS = {"seppo.cli", "seppo.api", "seppo.demo", "seppo.demo_video", "seppo.benchmark"}  # may build the embedded world
# The judge registry fits the learned preference judge on first use, and the implicit-accuracy
# diagnosis reads the held-out pairs: both may build the embedded world, the training loop never.
WORLD_READERS = {"seppo.judges.registry", "seppo.implicit"}
ALONE = {"seppo.errors", "seppo.rng", "seppo.losses", "seppo.methods", "seppo.checkpoint",
         "seppo.sharding"}  # import nothing of ours


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(seppo modules imported at module level, seppo modules imported inside a function)."""
    tree = ast.parse(path.read_text())
    top, inside = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        seppo = {n for n in names if n.split(".")[0] == "seppo"}
        (top if node in tree.body else inside).update(seppo)
    return top, inside


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}
# The command line imports each command's machinery when the command runs, so `--help` answers
# at once; those imports are still its edges here.
LAZY = {"seppo.cli"}
GRAPH = {m: {n for n in set.union(*imports(p)) if m in LAZY or n in imports(p)[0]} & MODULES.keys() - {m, "seppo"}
         for m, p in MODULES.items()}


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for n in GRAPH[todo.pop()] - seen:
            seen.add(n)
            todo.append(n)
    return seen


def test_no_seppo_import_inside_a_function():
    lazy = {m: sorted(imports(p)[1]) for m, p in MODULES.items() if imports(p)[1] and m not in LAZY}
    assert lazy == {}


@pytest.mark.parametrize("module", sorted(LEAVES))
def test_leaves_import_nothing_above_errors(module):
    assert GRAPH[module] <= {"seppo.errors", "seppo.paths"} | LEAVES


def test_only_tools_and_builders_import_builders():
    assert {m for m, deps in GRAPH.items() if deps & BUILDERS} <= TOOLS | BUILDERS | WORLD_READERS


def test_the_bottom_imports_nothing_of_ours():
    assert {m: GRAPH[m] for m in ALONE if GRAPH[m]} == {}
    assert GRAPH["seppo.paths"] <= {"seppo.errors"}


def test_config_imports_no_loss_and_the_loop_no_world():
    assert "seppo.losses" not in reachable("seppo.config")
    assert not reachable("seppo.train") & (BUILDERS | TOOLS)
    assert not reachable("seppo.data.dataset") & {"seppo.backbone", "seppo.train"}  # handed encode functions


def test_no_import_cycles():
    assert [m for m in MODULES if m in reachable(m)] == []


def test_the_package_loads_its_api_from_one_table():
    """`seppo/__init__.py` imports nothing of ours: its `_API` table names the module of each
    public name, loaded on first use (the one dynamic import: docs/architecture.md)."""
    init = SRC / "seppo" / "__init__.py"
    assert imports(init) == (set(), set())
    tree = ast.parse(init.read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "_API")
    modules = {ast.literal_eval(v) for v in table.values}
    assert modules <= set(MODULES) and modules <= {"seppo.config", "seppo.api", "seppo.evaluate", "seppo.report"}
    dynamic = [m for m, p in MODULES.items() if m != "seppo" and "import_module(" in p.read_text()]
    assert dynamic == []
