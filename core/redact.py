"""Keep tokens and passwords out of logs, error messages, event payloads and the job database.

Two layers, because neither alone is enough:

* a registry of the exact secrets this process has seen (access tokens, refresh tokens,
  passwords, client secrets) -- registered by :mod:`.backends` the moment it obtains
  them, held in memory only, never written anywhere;
* patterns for the shapes secrets take in HTTP traffic and library messages
  (``Authorization: Bearer ...``, ``"access_token": "..."``, ``password=...``, JWTs),
  which also catch secrets the registry never saw (e.g. from another library).

:func:`redact` is applied to every text the engine stores or emits;
:class:`RedactingFilter` / :func:`install_log_redaction` apply it to log records,
including those of the openeo client and urllib3.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter "secrets" would mask innocent text everywhere

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers: "Bearer basic//TOKEN", "Bearer oidc/provider/TOKEN", "Basic dXNlcjpwYXNz"
    (re.compile(r"(?i)\b(bearer|basic)(\s+)([^\s'\",;]+)"), rf"\1\2{MASK}"),
    # JSON or dict reprs: "access_token": "xyz", 'password': 'xyz'
    (
        re.compile(
            r"(?i)((?<![\w])[\"']?(?:access_token|refresh_token|id_token|client_secret|password|passwd|secret|token|"
            r"authorization|device_code|code_verifier)[\"']?\s*[:=]\s*)([\"'])(.*?)\2"
        ),
        rf"\1\2{MASK}\2",
    ),
    # Form / query strings: password=xyz&...
    (
        re.compile(
            r"(?i)\b(access_token|refresh_token|id_token|client_secret|password|device_code|code_verifier)=([^&\s'\"]+)"
        ),
        rf"\1={MASK}",
    ),
    # Bare JWTs (three base64url parts, the first two starting with '{"' encoded)
    (re.compile(r"\beyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*"), MASK),
    # URLs with user:password@
    (re.compile(r"(?i)(https?://)([^/\s:@]+):([^/\s@]+)@"), rf"\1\2:{MASK}@"),
)


def register_secret(*values: str | None) -> None:
    """Remember secrets so that :func:`redact` masks them wherever they appear."""
    global _secret_pattern
    new = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}
    if not new:
        return
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        # Longest first, so a token that contains another is masked whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def forget_secrets() -> None:
    """Drop every registered secret (tests; sign-out)."""
    global _secret_pattern
    with _lock:
        _secrets.clear()
        _secret_pattern = None


def redact(text: Any) -> str:
    """``text`` as a string with every known secret and secret-shaped value masked."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    pattern = _secret_pattern
    if pattern is not None:
        s = pattern.sub(MASK, s)
    for rx, repl in _PATTERNS:
        s = rx.sub(repl, s)
    return s


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists), keys kept."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """Logging filter that rewrites a record's message with secrets masked.

    Attach it to handlers (a filter on a logger does not see records of its child
    loggers); :func:`install_log_redaction` does that and more.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_otj_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string must not kill logging
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    record._otj_redacted = True


_factory_installed = False


def install_log_redaction(handlers: Iterable[logging.Handler] = ()) -> None:
    """Make every log record of this process secret-free.

    Wraps the log-record factory (so records from any logger -- openeo, urllib3,
    requests, ours -- are redacted when created) and adds :class:`RedactingFilter`
    to the given handlers. Idempotent.
    """
    global _factory_installed
    with _lock:
        if not _factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _redact_record(record)
                return record

            logging.setLogRecordFactory(factory)
            _factory_installed = True
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
