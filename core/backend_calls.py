"""Talking to the backends: one request with its error policy, their health, states and counters.

:meth:`BackendCalls._call` runs one request and returns a :class:`core.round_updates.CallResult`;
a failure updates the backend's health (backoff, Retry-After, sign-in) per :mod:`.retry`.
Backend state changes may come from other threads; they are queued and emitted by the round.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from . import retry
from .backends import Backend, SignInRequiredError
from .downloads import BackendAccess
from .round_updates import CallResult


class BackendCalls:
    """Part of :class:`core.scheduler.Scheduler`: requests, backend health and counters."""

    def _on_backend_state(self, backend: Backend, state: str, detail: str) -> None:
        # May be called from a job-creating thread or from sign_in() in the caller's thread:
        # queued, and emitted by the round's thread (listeners see one thread only).
        with self._deferred_lock:
            self._deferred_states.append((backend.name, state, detail))

    def _emit_backend_states(self) -> None:
        with self._deferred_lock:
            pending, self._deferred_states = self._deferred_states, []
        for name, state, detail in pending:
            self.events.on_backend_state(name, state, detail)
            if state == "needs_sign_in":
                self.events.on_needs_sign_in(name, detail)
            level = logging.INFO if state == "ok" else logging.WARNING
            self._emit_log(level, f"Backend {name}: {state} ({detail})", backend=name)

    def _prepare_backend(self, backend: Backend) -> None:
        if not backend.ready():
            return
        t0 = time.perf_counter()
        try:
            if backend.connection is None:
                backend.connect()
            else:
                backend.ensure_token_fresh()
        except SignInRequiredError:
            pass
        except Exception as e:  # noqa: BLE001
            backend.record_failure(e, "connecting")
        finally:
            self._add_io(t0)

    def _backend_access(self, name: str) -> BackendAccess:
        backend = self.backends.get(name)
        if backend is None:
            raise RuntimeError(f"unknown backend {name!r}")
        return BackendAccess(
            root_url=backend.root_url,
            auth=backend.auth,
            new_session=backend.new_session,
            timeout=backend.profile.request_timeout,
            on_auth_failure=backend.request_reauth,
        )

    def _warn_unknown_backends(self, by_backend: dict[str, list[dict]]) -> None:
        for name, rows in by_backend.items():
            if self.backends.get(name) is None and name not in self._unknown_backend_warned:
                self._unknown_backend_warned.add(name)
                self._emit_log(
                    logging.WARNING,
                    f"{len(rows)} tile(s) have jobs on backend {name!r}, which is not part of this run: "
                    "they are not tracked until it is added again.",
                )

    def _request_total(self) -> int:
        return sum(b.request_count for b in self.backends)

    def _http_total(self) -> float:
        return sum(getattr(b, "http_seconds", 0.0) for b in self.backends)

    def _bytes_total(self) -> int:
        return sum(getattr(b, "bytes_received", 0) for b in self.backends)

    def _call(self, backend: Backend, context: str, fn: Callable[[], Any]) -> CallResult:
        """Run one request; on failure update the backend's health.

        An authentication failure is retried once right away when re-authentication worked.
        """
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                value = fn()
                self._add_io(t0)
                backend.record_success(context)
                return CallResult(True, value)
            except Exception as e:  # noqa: BLE001 - classified
                self._add_io(t0)
                kind = retry.classify(e)
                if kind == retry.AUTH and attempt == 1 and backend.reauthenticate(reason=str(e)):
                    continue
                if kind not in (retry.CLIENT, retry.NOT_FOUND, retry.CONCURRENT_LIMIT):
                    backend.record_failure(e, context)
                return CallResult(False, e, kind)
        return CallResult(False, None, retry.OTHER)  # pragma: no cover

    def _add_io(self, t0: float) -> None:
        if threading.get_ident() == self._step_thread:
            self._io_seconds += time.perf_counter() - t0
