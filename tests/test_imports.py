"""Import structure: config never reaches space, and no cycles among the training-side modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HPO = Path(__file__).resolve().parents[1] / "hpo"
# Study file -> space -> trainer, with the keras-free tables underneath.
MODULES = [
    "hpo.hyperparameters",
    "hpo.backbones",
    "hpo.config",
    "hpo.space",
    "hpo.models",
    "hpo.cache",
    "hpo.data",
    "hpo.metrics",
    "hpo._tf",
    "hpo.training",
    *sorted(
        f"hpo.training.{p.stem}" for p in (HPO / "training").glob("_*.py") if p.stem != "__init__"
    ),
]


def _source(module: str) -> Path:
    rel = Path(*module.split(".")[1:])
    package = HPO / rel / "__init__.py"
    return package if package.exists() else HPO / rel.with_suffix(".py")


def _imports(module: str) -> set[str]:
    """hpo modules ``module`` imports at run time, lazily or not (TYPE_CHECKING excluded)."""
    tree = ast.parse(_source(module).read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hpo."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hpo":
                found.update(f"hpo.{a.name}" for a in node.names)
            elif node.module.startswith("hpo."):
                found.add(node.module)
    # A submodule importing its own package is how Python loads packages, not a cycle.
    return {m for m in found if m in MODULES and not module.startswith(m + ".")}


def test_no_import_cycle() -> None:
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])


def test_config_does_not_import_space() -> None:
    assert "hpo.space" not in _imports("hpo.config")
    code = (
        "import sys, hpo.config, hpo.backbones, hpo.hyperparameters\n"
        "bad = [m for m in ('hpo.space', 'keras', 'tensorflow', 'optuna') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_hpo_cache_reads_no_environment(tmp_path: Path) -> None:
    """$HPO_CACHE_MEMORY_MB is read on first use: set after the import, it still counts."""
    code = (
        "import os, numpy as np\n"
        "os.environ['HPO_CACHE_MEMORY_MB'] = 'not a number'\n"
        "import hpo.cache\n"  # an import-time read would fail here
        "os.environ['HPO_CACHE_MEMORY_MB'] = '1'\n"
        f"cache = hpo.cache.FeatureCache({str(tmp_path)!r})\n"
        "big = lambda: np.zeros(2**19, dtype=np.float32)\n"  # 2 MiB, over the 1 MiB tier
        "print(cache.get_or_compute({'k': 1}, big)[1], cache.get_or_compute({'k': 1}, big)[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["computed", "disk"]
