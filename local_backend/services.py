"""What the HTTP layer and the workers share: store, auth, faults, counters, paths, process lookup."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .auth import Auth
from .config import BackendConfig
from .errors import ApiError, JobError
from .faults import FaultInjector, RequestCounter
from .store import JobStore

PROCESSES_DIR = Path(__file__).resolve().parent / "processes"
DEMO_PATH = re.compile(r"^/udp/(\w+)\.json$")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Services:
    config: BackendConfig
    data_dir: Path
    store: JobStore
    auth: Auth
    faults: FaultInjector
    counter: RequestCounter
    secret: bytes
    runner: Any = None  # JobRunner, set once created
    pool: Any = None  # ComputePool, set once created
    port: int = 0
    _demo_cache: dict[str, dict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    # -- demo processes (served at <root>/udp/<name>.json) ------------------------------------------
    def demo_process(self, name: str) -> dict | None:
        if not re.match(r"^\w+$", name):
            return None
        with self._lock:
            if name not in self._demo_cache:
                path = PROCESSES_DIR / f"{name}.json"
                if not path.is_file():
                    return None
                self._demo_cache[name] = json.loads(path.read_text(encoding="utf-8"))
            return self._demo_cache[name]

    def own_namespace_definition(self, url: str) -> dict | None:
        """The definition behind one of this server's own namespace URLs, without any network."""
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()
        match = DEMO_PATH.match(parsed.path)
        if not match or parsed.port != self.port or (host not in LOCAL_HOSTS and host != self.config.host):
            return None
        return self.demo_process(match.group(1))

    # -- process lookup for running jobs --------------------------------------------------------
    def lookup_process(self, user: str, process_id: str, namespace: str | None) -> dict:
        if namespace in (None, "backend", "predefined", "user"):
            definition = self.store.get_udp(user, process_id)
            if definition is None:
                raise JobError(f"Process '{process_id}' is not available on this backend.", "ProcessUnsupported")
            return definition
        if not re.match(r"https?://", namespace):
            raise JobError(f"Unsupported namespace '{namespace}' for process '{process_id}'.", "ProcessUnsupported")
        definition = self.own_namespace_definition(namespace)
        if definition is None:
            definition = self._fetch_remote(namespace, process_id)
        if "id" not in definition and isinstance(definition.get("processes"), list):
            matches = [p for p in definition["processes"] if p.get("id") == process_id]
            if len(matches) != 1:
                raise JobError(
                    f"Process '{process_id}' not found in the process listing at {namespace}.", "ProcessUnsupported"
                )
            definition = matches[0]
        if definition.get("id") not in (None, process_id):
            raise JobError(
                f"The namespace {namespace} defines '{definition.get('id')}', not '{process_id}'.", "ProcessUnsupported"
            )
        return definition

    def _fetch_remote(self, url: str, process_id: str) -> dict:
        timeout = self.config.namespace_timeout
        try:
            req = urllib.request.Request(url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = json.loads(resp.read(5_000_000))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise JobError(
                f"Could not load the definition of process '{process_id}' from namespace {url} "
                f"(timeout {timeout:g} s): {reason}",
                "ProcessNamespaceInvalid",
            ) from exc
        if not isinstance(data, dict):
            raise JobError(f"The namespace {url} did not return a process definition.", "ProcessNamespaceInvalid")
        return data

    # -- dry runs (estimates, the size check of synchronous processing) --------------------------
    def resolve_definitions(self, process: dict, user: str) -> dict:
        """The definitions a process needs beyond the predefined ones (ApiError if one is missing)."""
        from . import compute

        try:
            return compute.resolve_definitions(process, lambda pid, ns: self.lookup_process(user, pid, ns))
        except JobError as exc:
            raise ApiError(exc.code, str(exc)) from exc

    def dry_run(self, process: dict, user: str, definitions: dict | None = None):
        """:class:`compute.Outcome` of a run on a few pixels: what the process loads and saves."""
        from . import compute

        if definitions is None:
            definitions = self.resolve_definitions(process, user)
        outcome = compute.dry_run(process, self.config.pixel_size, definitions)
        if outcome.error is not None:
            message, code = outcome.error
            raise ApiError(code, message)
        return outcome

    # -- downloads --------------------------------------------------------------------------
    def signature(self, job_id: str, name: str) -> str:
        return hmac.new(self.secret, f"{job_id}/{name}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_path(self, job_id: str, name: str) -> str:
        return f"/download/{job_id}/{self.signature(job_id, name)}/{name}"

    def delete_results(self, job_id: str) -> None:
        shutil.rmtree(self.results_dir / job_id, ignore_errors=True)
