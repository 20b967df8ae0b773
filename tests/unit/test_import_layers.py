"""The packages import downwards only: the layers of docs/ARCHITECTURE.md ("Layers"), checked
on every import statement of rater/ and kernels/, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: docs/ARCHITECTURE.md, "Layers": package -> layer
LAYERS = {
    "kernels": 0,
    **dict.fromkeys(
        ("errors", "settings", "clock", "logs", "money", "reasons", "escape", "metrics"), 0
    ),
    **dict.fromkeys(("redis", "kafka", "clickhouse"), 1),
    **dict.fromkeys(("tariffs", "reference", "switches", "accounts"), 2),
    **dict.fromkeys(("pipeline", "ingest", "loadgen"), 3),
    **dict.fromkeys(("billing", "analytics"), 4),
    **dict.fromkeys(("serve", "portal", "cli", "stack", "demo"), 5),
}
#: the exception docs/ARCHITECTURE.md names: (importing module, imported module)
EXCEPTIONS = {("rater.switches.registry", "rater.pipeline.formats")}
#: imported only by themselves, each other and rater.demo
TOP = {"cli", "serve"}


def _package(module: str) -> str | None:
    """'rater.accounts.api' -> 'accounts', 'kernels.price' -> 'kernels', others None."""
    parts = module.split(".")
    if parts[0] == "kernels":
        return "kernels"
    if parts[0] == "rater" and len(parts) > 1:
        return parts[1]
    return None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every import of rater or kernels in a file; `from m import x` gives
    'm.x' (x may be a submodule: `from rater import cli`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, m) for line, m in found if _package(m) is not None]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for base in ("rater", "kernels"):
        for path in sorted((ROOT / base).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name != "rater":  # the package's own __init__: its version, nothing imported
                out.append((name, path))
    return out


def _breaks() -> list[str]:
    broken = []
    for module, path in _modules():
        source = _package(module)
        assert source in LAYERS, f"{module}: put its package in docs/ARCHITECTURE.md's layers"
        for line, imported in _imports(path):
            target = _package(imported)
            assert target is not None
            if target == source:
                continue
            assert target in LAYERS, f"{imported}: a package docs/ARCHITECTURE.md does not place"
            where = f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}"
            if any(module.startswith(m) and imported.startswith(i) for m, i in EXCEPTIONS):
                continue
            if source == "kernels":
                broken.append(f"{where} (kernels import nothing of rater)")
            elif LAYERS[target] > LAYERS[source]:
                broken.append(f"{where} (layer {LAYERS[source]} imports layer {LAYERS[target]})")
            elif target in TOP and source not in (*TOP, "demo"):
                broken.append(f"{where} (only cli, serve and rater.demo import {target})")
            elif source == "analytics" and target == "billing":
                broken.append(f"{where} (analytics imports no billing)")
    return broken


def test_imports_follow_the_layers() -> None:
    broken = _breaks()
    assert broken == [], "imports against docs/ARCHITECTURE.md, Layers:\n" + "\n".join(broken)


def test_analytics_writes_nothing() -> None:
    """No insert helper, no INSERT, ALTER, DROP or CREATE text in rater/analytics."""
    found = []
    for path in sorted((ROOT / "rater" / "analytics").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and "insert" in node.attr.lower():
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words = node.value.upper().split()
                if words and words[0] in ("INSERT", "ALTER", "DROP", "CREATE", "TRUNCATE"):
                    found.append(f"{path.name}:{node.lineno}: {node.value[:40]!r}")
    assert found == [], "rater/analytics is read-only:\n" + "\n".join(found)


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The AST reading finds lazy imports and `from rater import x` forms."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from rater import cli\n    import rater.pipeline.flow\n")
    assert [m for _, m in _imports(probe)] == ["rater.cli", "rater.pipeline.flow"]
