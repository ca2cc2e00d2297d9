"""DESIGN.md's dependency direction: core/ and local_backend/ stay free of QGIS and Qt,
and local_backend/ stands alone (reached only over HTTP)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QT_OR_QGIS = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "sip")
PLUGIN_PACKAGES = ("openeo_tile_jobs", "core", "gis", "ui", "processing")


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, relative level) of every import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["core", "local_backend"])
def test_no_qgis_or_qt(folder: str) -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _python_files(folder)
        for line, module, level in _imports(path)
        if level == 0 and module.split(".")[0] in QT_OR_QGIS
    ]
    assert offending == []


def test_local_backend_stands_alone() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {'.' * level}{module}"
        for path in _python_files("local_backend")
        for line, module, level in _imports(path)
        if (level == 0 and module.split(".")[0] in PLUGIN_PACKAGES)
        or level > len(path.relative_to(ROOT / "local_backend").parts)  # climbs out of local_backend/
    ]
    assert offending == []


def test_core_does_not_import_upper_layers() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {'.' * level}{module}"
        for path in _python_files("core")
        for line, module, level in _imports(path)
        if level > len(path.relative_to(ROOT / "core").parts)
        and module.split(".")[0] in ("gis", "ui", "processing", "plugin", "local_backend")
    ]
    assert offending == []


def test_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself catches an offending import (so the tests above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from qgis.core import QgsProject\nfrom ..gis import layer\n")
    assert [(m, lvl) for _, m, lvl in _imports(bad)] == [("qgis.core", 0), ("gis", 2)]
