"""Qt 6 / QGIS 4 rules for the plugin's code, checked by walking the AST (``--fix`` rewrites).

PyQt6 (QGIS 4) only knows scoped enums: ``Qt.AlignmentFlag.AlignLeft``, ``QgsTask.Flag.CanCancel``.
A name such as ``Qt.AlignLeft`` works in PyQt5 and fails at import or run time under Qt 6. The
rules are those of QGIS's own migration script (``scripts/pyqt5_to_pyqt6``), implemented here by
introspection of the running QGIS: an attribute of a Qt or QGIS class that is an enum member must
be reached through its enum; ``exec_`` is ``exec``; ``QRegExp``, ``QDesktopWidget`` and
``QVariant()`` as a null value do not exist in Qt 6. Run it with the Python that imports qgis:

    python scripts/qt6_rules.py [--fix] [paths...]
"""

from __future__ import annotations

import ast
import enum
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", "build", "dist", ".qgis-settings", ".git", "__pycache__"}
#: A statement carrying this comment is the old-QGIS branch of a version switch (gis/compat.py).
FALLBACK_MARK = "# before QGIS "
REMOVED_IN_QT6 = {
    "QRegExp": "use QRegularExpression",
    "QDesktopWidget": "use QScreen (QGuiApplication.primaryScreen())",
}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    col: int
    end_col: int
    text: str
    message: str
    replacement: str | None = None

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}:{self.col + 1}: {self.message}"


def _is_enum_type(obj: object) -> bool:
    meta = type(obj)
    return (meta.__module__ in ("sip", "PyQt5.sip", "PyQt6.sip") and meta.__name__ == "enumtype") or (
        isinstance(obj, type) and issubclass(obj, enum.Enum)
    )


def _is_enum_member(value: object) -> bool:
    return _is_enum_type(type(value))


def _imported_qgis_names(tree: ast.Module) -> dict[str, object]:
    """Names bound by ``from qgis... import X`` in the module, resolved to their objects."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                continue
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                if obj is not None:
                    names[alias.asname or alias.name] = obj
    return names


def _resolve(node: ast.expr, names: dict[str, object]) -> object | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, names)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def _scoped_spelling(owner_text: str, attr: str, owner: object, value: object) -> str:
    """``Qt.AlignmentFlag.AlignLeft`` for ``Qt.AlignLeft``; an enum moved to another class keeps its home."""
    enum_type = type(value)
    member = value.name if isinstance(value, enum.Enum) else attr
    qualname = enum_type.__qualname__
    home = qualname.rsplit(".", 1)[0] if "." in qualname else ""
    if home and home != getattr(owner, "__name__", ""):
        return f"{qualname}.{member}"
    return f"{owner_text}.{enum_type.__name__}.{member}"


def check_source(path: Path, source: str) -> list[Finding]:
    tree = ast.parse(source, filename=str(path))
    names = _imported_qgis_names(tree)
    lines = [line.encode("utf-8") for line in source.splitlines()]  # AST columns count UTF-8 bytes
    findings: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            end = node.end_col_offset or node.col_offset
            start = end - len("exec_")
            findings.append(Finding(path, node.lineno, start, end, "exec_", "exec_() is exec() in Qt 6", "exec"))
        elif isinstance(node, ast.Name) and node.id in REMOVED_IN_QT6 and node.id in names:
            findings.append(
                Finding(path, node.lineno, node.col_offset, node.col_offset, node.id, REMOVED_IN_QT6[node.id])
            )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "QVariant"
            and not node.args
            and "QVariant" in names
        ):
            findings.append(
                Finding(path, node.lineno, node.col_offset, node.col_offset, "QVariant()", "QVariant() is no null")
            )
        elif isinstance(node, ast.Attribute) and node.lineno == node.end_lineno:
            finding = _enum_finding(path, node, names, lines)
            if finding:
                findings.append(finding)
    fallback = _fallback_lines(tree, lines)
    return [f for f in findings if f.line not in fallback]


def _fallback_lines(tree: ast.Module, lines: list[bytes]) -> set[int]:
    """Lines of the simple statements (however formatted) that carry ``FALLBACK_MARK``."""
    marked: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)):
            span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if any(FALLBACK_MARK.encode() in lines[n - 1] for n in span):
                marked.update(span)
    return marked


def _enum_finding(path: Path, node: ast.Attribute, names: dict[str, object], lines: list[bytes]) -> Finding | None:
    owner = _resolve(node.value, names)
    if owner is None:
        return None
    text = lines[node.lineno - 1][node.col_offset : node.end_col_offset].decode("utf-8")
    if _is_enum_type(owner):
        return _scoped_enum_finding(path, node, owner, text)
    if not isinstance(owner, type):
        return None
    value = getattr(owner, node.attr, None)
    if value is None or not _is_enum_member(value) or _is_enum_type(value):
        return None
    owner_text = lines[node.lineno - 1][node.value.col_offset : node.value.end_col_offset].decode("utf-8")
    fixed = _scoped_spelling(owner_text, node.attr, owner, value)
    if fixed == text:
        return None
    return Finding(
        path, node.lineno, node.col_offset, node.end_col_offset, text, f"unscoped enum {text} -> {fixed}", fixed
    )


def _scoped_enum_finding(path: Path, node: ast.Attribute, owner: object, text: str) -> Finding | None:
    """A scoped spelling that works here only through QGIS's aliases, which QGIS 4 no longer has.

    QGIS 3.30+ moved many class enums into ``Qgis`` (``QgsWkbTypes.GeometryType`` is
    ``Qgis.GeometryType``) and keeps the old names as aliases until QGIS 4.
    """
    where = (path, node.lineno, node.col_offset, node.end_col_offset, text)
    if not hasattr(owner, node.attr):
        return Finding(*where, f"{text} does not exist in this QGIS")
    value = getattr(owner, node.attr)
    if not isinstance(value, enum.Enum):
        return None
    qualname = type(value).__qualname__
    canonical = f"{qualname}.{value.name}"
    spelled_home = text.rsplit(".", 2)[0] if text.count(".") >= 2 else ""
    home = qualname.rsplit(".", 1)[0] if "." in qualname else spelled_home
    if value.name != node.attr or (spelled_home and home != spelled_home.rsplit(".", 1)[-1]):
        return Finding(*where, f"{text} is an alias QGIS 4 removes -> {canonical}")
    return None


def python_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for base in paths:
        if base.is_file():
            files.append(base)
            continue
        for path in sorted(base.rglob("*.py")):
            if not SKIP_DIRS.intersection(path.relative_to(base).parts):
                files.append(path)
    return files


def fix(path: Path, findings: list[Finding]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    for finding in sorted(findings, key=lambda f: (f.line, f.col), reverse=True):
        if finding.replacement is None:
            continue
        line = lines[finding.line - 1]
        lines[finding.line - 1] = line[: finding.col] + finding.replacement.encode("utf-8") + line[finding.end_col :]
    path.write_bytes(b"".join(lines))


def main(argv: list[str]) -> int:
    import qgis.core  # noqa: F401 - without QGIS nothing would resolve and every file would pass

    do_fix = "--fix" in argv
    targets = [Path(a).resolve() for a in argv if not a.startswith("--")] or [ROOT]
    total = 0
    for path in python_files(targets):
        findings = check_source(path, path.read_text(encoding="utf-8"))
        for finding in findings:
            print(finding)
        total += len(findings)
        if do_fix and findings:
            fix(path, findings)
    print(f"qt6_rules: {total} finding(s)")
    return 1 if total and not do_fix else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
