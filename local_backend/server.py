"""LocalBackend: start the openEO API in-process (background thread) or in the foreground."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import BackendConfig, FaultConfig

log = logging.getLogger(__name__)


class LocalBackend:
    """The Local demo backend. ``LocalBackend(data_dir, port=0, **config).start()`` serves on
    127.0.0.1 (a free port when ``port=0``) until :meth:`stop`. Config knobs: see the package
    docstring (:mod:`local_backend`)."""

    def __init__(self, data_dir: str | os.PathLike, port: int = 0, **config: Any):
        self.data_dir = Path(data_dir)
        self.requested_port = int(port)
        self.config = BackendConfig.from_kwargs(**config)
        self._server = None
        self._thread: threading.Thread | None = None
        self._services = None
        self._runner = None

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> LocalBackend:
        """Bind, start the workers and serve in a daemon thread. Returns self."""
        self._bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-backend-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[LocalBackend], None] | None = None) -> None:
        """Serve in the calling thread (the command line); Ctrl+C stops cleanly. ``ready`` is
        called once the port is bound (``backend.url`` is then known)."""
        self._bind()
        if ready is not None:
            ready(self)
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._thread = None
            self.stop()

    def _bind(self) -> None:
        if self._server is not None:
            raise RuntimeError("LocalBackend already started")
        from . import INSTALL_HINT, missing_requirements

        missing = missing_requirements()
        if missing:
            raise RuntimeError(f"The Local demo backend needs {', '.join(missing)}: {INSTALL_HINT}")
        from . import engine
        from .app import create_app
        from .auth import Auth
        from .faults import FaultInjector, RequestCounter
        from .pool import ComputePool
        from .runner import JobRunner
        from .services import Services
        from .store import JobStore

        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "results").mkdir(exist_ok=True)
        store = JobStore(self.data_dir / "jobs.sqlite")
        services = Services(
            config=self.config,
            data_dir=self.data_dir,
            store=store,
            auth=Auth(self.config, store),
            faults=FaultInjector(self.config.faults),
            counter=RequestCounter(),
            secret=_secret(self.data_dir / "secret.key"),
        )
        app = create_app(services)
        try:
            server = _make_server(self.config.host, self.requested_port, app)
        except OSError:
            store.close()
            raise
        services.port = server.server_port
        pool = ComputePool(self.config.workers, self.config.compute).start()
        runner = JobRunner(self.config, store, services.results_dir, services.faults, services.lookup_process, pool)
        services.runner, services.pool = runner, pool
        self._services, self._runner, self._server = services, runner, server
        threading.Thread(target=engine.warm_up, name="local-backend-warm-up", daemon=True).start()
        runner.start()
        log.info("Local demo backend at %s (data in %s)", self.url, self.data_dir)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, close open connections, let workers finish (at most ``timeout`` s)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        server.close_connections()
        server.server_close()
        self._runner.stop(timeout)
        self._services.store.close()

    def __enter__(self) -> LocalBackend:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._services is None:
            raise RuntimeError("LocalBackend not started")
        return self._services.port

    @property
    def url(self) -> str:
        """The openEO root URL, for ``openeo.connect(url)``."""
        host = self.config.host if self.config.host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def demo_process_url(self) -> str:
        """Namespace URL of the demo process ``cloud_free_composite``."""
        return f"{self.url}/udp/cloud_free_composite.json"

    @property
    def compute_mode(self) -> str:
        """Where jobs compute: "processes" or "threads" (asked for, or the fallback)."""
        return self._require().pool.mode

    def worker_pids(self) -> list[int]:
        """Process ids of the running worker processes (they start with the first computation)."""
        return self._require().pool.worker_pids()

    # -- faults, counters, sign-in -------------------------------------------------------------
    def set_faults(self, **faults: Any) -> None:
        """Replace the fault settings (no arguments: no faults). Keys: see :class:`FaultConfig`."""
        self._require().faults.set(FaultConfig.from_dict(faults))

    def faults(self) -> dict[str, Any]:
        return self._require().faults.config.to_dict()

    def request_counts(self) -> dict[str, int]:
        """Requests per endpoint, e.g. ``{"GET /jobs": 3, "POST /jobs/{job_id}/results": 1}``;
        injected faults are also counted as ``"fault 503"`` etc."""
        return self._require().counter.snapshot()

    def response_bytes(self) -> dict[str, int]:
        """Bytes of the response bodies sent per endpoint (same keys as :meth:`request_counts`)."""
        return self._require().counter.bytes_snapshot()

    def reset_counts(self) -> None:
        self._require().counter.reset()

    def approve_device(self, user_code: str, user: str | None = None) -> bool:
        """Approve a pending OIDC device sign-in (what the user does in the browser)."""
        return self._require().auth.approve(user_code, user)

    def pending_user_codes(self) -> list[str]:
        return self._require().auth.pending_user_codes()

    def _require(self):
        if self._services is None:
            raise RuntimeError("LocalBackend not started")
        return self._services

    def __repr__(self) -> str:
        where = self.url if self._services is not None else "not started"
        return f"LocalBackend({where}, data_dir={str(self.data_dir)!r})"


def _secret(path: Path) -> bytes:
    """Key signing download URLs; kept in the data dir so URLs stay valid across restarts."""
    if path.is_file():
        return path.read_bytes()
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


def _make_server(host: str, port: int, app):
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            log.debug("%s %s", self.requestline, code)

        def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
            log.debug(format, *args)

    class Server(ThreadedWSGIServer):
        daemon_threads = True
        block_on_close = False

        def __init__(self, *args: Any, **kwargs: Any):
            self._connections: set[socket.socket] = set()
            self._connections_lock = threading.Lock()
            super().__init__(*args, **kwargs)

        def process_request(self, request, client_address):  # type: ignore[override]
            try:  # small unbuffered writes must not wait for delayed ACKs (Nagle)
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            with self._connections_lock:
                self._connections.add(request)
            super().process_request(request, client_address)

        def shutdown_request(self, request):  # type: ignore[override]
            with self._connections_lock:
                self._connections.discard(request)
            super().shutdown_request(request)

        def close_connections(self) -> None:
            with self._connections_lock:
                connections = list(self._connections)
            for conn in connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    try:
        return Server(host, port, app, handler=QuietHandler)
    except SystemExit:  # werkzeug exits the program when it cannot bind; a caller may pick another port
        raise OSError(errno.EADDRINUSE, f"cannot listen on {host}:{port} (in use?)") from None
