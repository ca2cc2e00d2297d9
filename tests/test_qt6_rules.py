"""Qt 6 / QGIS 4 readiness: no unscoped Qt or QGIS enum, no exec_(), nothing Qt 6 removed.

The rules live in scripts/qt6_rules.py (also `python scripts/qt6_rules.py --fix`); they resolve
names against the QGIS this test runs in, so the 3.40/3.44 matrix also catches enums that QGIS
moved into `Qgis` and whose old spelling no longer exists there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rules():
    spec = importlib.util.spec_from_file_location("qt6_rules", ROOT / "scripts" / "qt6_rules.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("qt6_rules", module)
    spec.loader.exec_module(module)
    return module


def test_the_plugin_code_follows_the_qt6_rules():
    rules = _rules()
    findings = [
        str(finding)
        for path in rules.python_files([ROOT])
        for finding in rules.check_source(path, path.read_text(encoding="utf-8"))
    ]
    assert findings == []


def test_the_rules_find_what_qt6_rejects(tmp_path):
    rules = _rules()
    source = (
        "from qgis.PyQt.QtCore import Qt, QRegExp\n"
        "from qgis.PyQt.QtWidgets import QDialog\n"
        "from qgis.core import QgsTask\n"
        "flags = Qt.AlignLeft | Qt.AlignmentFlag.AlignRight\n"
        "task_flags = QgsTask.CanCancel\n"
        "QDialog().exec_()\n"
        "pattern = QRegExp('x')\n"
    )
    path = tmp_path / "sample.py"
    path.write_text(source, encoding="utf-8")
    messages = [f.message for f in rules.check_source(path, source)]
    assert "unscoped enum Qt.AlignLeft -> Qt.AlignmentFlag.AlignLeft" in messages
    assert "unscoped enum QgsTask.CanCancel -> QgsTask.Flag.CanCancel" in messages
    assert "exec_() is exec() in Qt 6" in messages
    assert any("QRegularExpression" in m for m in messages)
    assert len(messages) == 4  # the scoped Qt.AlignmentFlag.AlignRight is fine

    rules.fix(path, rules.check_source(path, source))
    fixed = path.read_text(encoding="utf-8")
    assert "Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignRight" in fixed
    assert "QgsTask.Flag.CanCancel" in fixed and ".exec()" in fixed
