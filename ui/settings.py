"""The panel's remembered choices, in QgsSettings under ``openeo_tile_jobs/``.

Never secrets: credentials and tokens live in QGIS's authentication database
(see :mod:`.credentials`).
"""

from __future__ import annotations

import json
from typing import Any

from qgis.core import QgsSettings

PREFIX = "openeo_tile_jobs/"


def _key(key: str) -> str:
    return PREFIX + key


def value(key: str, default: Any = None, type_: type | None = None) -> Any:
    settings = QgsSettings()
    if type_ is None:
        return settings.value(_key(key), default)
    return settings.value(_key(key), default, type=type_)


def set_value(key: str, data: Any) -> None:
    QgsSettings().setValue(_key(key), data)


def remove(key: str) -> None:
    QgsSettings().remove(_key(key))


def json_value(key: str, default: Any = None) -> Any:
    """A value stored as JSON text (lists and dicts survive every settings backend)."""
    text = value(key, "", str)
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def set_json_value(key: str, data: Any) -> None:
    set_value(key, json.dumps(data))
