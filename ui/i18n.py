"""Translation helper shared by the panel's modules (one context per module)."""

from __future__ import annotations

from typing import Callable

from qgis.PyQt.QtCore import QCoreApplication


def translator(context: str) -> Callable[[str], str]:
    """``tr`` bound to a translation context, e.g. ``tr = translator("GridPage")``."""

    def tr(text: str) -> str:
        return QCoreApplication.translate(context, text)

    return tr
