"""The proxy of QGIS's network settings, as a ``requests`` proxies mapping for the engine."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from qgis.core import QgsSettings

_SCHEMES = {"HttpProxy": "http", "HttpCachingProxy": "http", "Socks5Proxy": "socks5h"}


def qgis_proxies() -> Optional[dict[str, str]]:
    """``None`` (use the system's/environment's proxy) unless QGIS is set to a specific proxy."""
    settings = QgsSettings()
    if not settings.value("proxy/proxyEnabled", False, bool):
        return None
    kind = settings.value("proxy/proxyType", "", str)
    scheme = _SCHEMES.get(kind)
    host = settings.value("proxy/proxyHost", "", str)
    if scheme is None or not host:
        return None  # DefaultProxy: the system's settings
    port = settings.value("proxy/proxyPort", "", str)
    user = settings.value("proxy/proxyUser", "", str)
    password = settings.value("proxy/proxyPassword", "", str)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    url = f"{scheme}://{auth}{host}{':' + port if port else ''}"
    return {"http": url, "https": url}
