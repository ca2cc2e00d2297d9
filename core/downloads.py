"""Verified, atomic downloads of job results, on a small worker pool apart from tracking.

Every asset goes to ``<output>/job_<id>/<asset name>``, first as ``<asset name>.part``,
renamed only once its size (and its ``file:checksum`` multihash, where the STAC metadata
has one) is verified; the STAC ``job-results.json`` is written beside it. A name that could
leave the job folder (``..``, an absolute path, a path separator) is refused and
reported; job ids are checked the same way, so a hostile backend cannot write outside
the output folder.

Workers never touch the job database: they put :class:`DownloadResult` objects on a
queue that :meth:`Downloader.poll` drains in the scheduler's thread, which records them
(result_status pending -> downloading -> downloaded / failed). A tile counts as in flight
from :meth:`Downloader.submit` until :meth:`Downloader.poll` returned its result. The openeo client's
``JobResults.download_files`` neither verifies checksums nor writes atomically, hence
this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urljoin, urlparse

import requests

from . import retry
from .redact import redact

_log = logging.getLogger(__name__)

RESULTS_FILENAME = "job-results.json"
#: File names of results that are rasters (shown as layers, put in the mosaic).
RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff")
PART_SUFFIX = ".part"
CHUNK_SIZE = 256 * 1024

# result_status values
PENDING = "pending"
DOWNLOADING = "downloading"
DOWNLOADED = "downloaded"
FAILED = "failed"


class UnsafeNameError(ValueError):
    pass


class VerificationError(IOError):
    pass


class DownloadCanceledError(Exception):
    pass


def check_safe_name(name: Any, what: str = "asset name") -> str:
    """``name`` if it is a plain file name that stays inside its folder, else :class:`UnsafeNameError`."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise UnsafeNameError(f"refused {what} {name!r}: empty or a directory reference")
    if "/" in name or "\\" in name or "\x00" in name:
        raise UnsafeNameError(f"refused {what} {name!r}: contains a path separator")
    if ".." in name:
        raise UnsafeNameError(f"refused {what} {name!r}: contains '..'")
    if os.path.isabs(name) or (len(name) >= 2 and name[1] == ":"):
        raise UnsafeNameError(f"refused {what} {name!r}: absolute path")
    if name == RESULTS_FILENAME:
        raise UnsafeNameError(f"refused {what} {name!r}: would overwrite the result metadata")
    return name


def is_raster_result(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(RASTER_SUFFIXES)


def job_dir_of(output_dir: Path | str, job_id: str) -> Path:
    """``<output>/job_<id>``, refusing ids that would leave the output folder."""
    check_safe_name(job_id, "job id")
    return Path(output_dir) / f"job_{job_id}"


# -- multihash (hand-written: a few lines instead of a runtime dependency for a QGIS plugin) --------

_MULTIHASH = {
    0x11: "sha1",
    0x12: "sha256",
    0x13: "sha512",
    0x14: "sha3_512",
    0x15: "sha3_384",
    0x16: "sha3_256",
    0x17: "sha3_224",
    0xD5: "md5",
    0xB220: "blake2b_256",
    0xB240: "blake2b_512",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def parse_multihash(hex_value: str) -> tuple[str, bytes]:
    """``(hashlib algorithm name, digest)`` of a hex multihash such as STAC's ``file:checksum``."""
    raw = bytes.fromhex(hex_value.strip())
    code, pos = _varint(raw, 0)
    length, pos = _varint(raw, pos)
    digest = raw[pos:]
    if code not in _MULTIHASH:
        raise ValueError(f"unsupported multihash function 0x{code:x}")
    if len(digest) != length:
        raise ValueError("multihash digest length mismatch")
    return _MULTIHASH[code], digest


def new_hasher(algorithm: str) -> Any:
    if algorithm == "blake2b_256":
        return hashlib.blake2b(digest_size=32)
    if algorithm == "blake2b_512":
        return hashlib.blake2b(digest_size=64)
    return hashlib.new(algorithm)


def multihash_hex(algorithm: str, data: bytes) -> str:
    """The hex multihash of ``data`` (tests and the local backend use it to write checksums)."""
    codes = {v: k for k, v in _MULTIHASH.items()}
    code = codes[algorithm]
    h = new_hasher(algorithm)
    h.update(data)
    digest = h.digest()

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return (varint(code) + varint(len(digest)) + digest).hex()


# -- tasks and results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadTask:
    fid: int
    tile_id: Any
    job_id: str
    backend: str


@dataclass
class DownloadResult:
    task: DownloadTask
    ok: bool
    result_dir: str = ""
    files: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    error: Optional[str] = None
    canceled: bool = False
    bytes: int = 0


@dataclass(frozen=True)
class BackendAccess:
    """What a worker needs to reach one backend: its root URL, current auth, a session factory."""

    root_url: str
    auth: Any
    new_session: Callable[[], requests.Session]
    timeout: float = 30.0
    #: Called when the backend refused the token: the scheduler re-authenticates in its own thread.
    on_auth_failure: Optional[Callable[[], None]] = None


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON under a temporary name, then rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _is_external(url: str, root_url: str) -> bool:
    """Same rule as the openeo client: no credentials to URLs outside the backend's root."""
    root = root_url.rstrip("/")
    return not (url == root or url.startswith(root + "/"))


def _stac_assets(metadata: dict) -> dict[str, dict]:
    assets = metadata.get("assets")
    if isinstance(assets, dict) and assets:
        return assets
    return {}


class Downloader:
    """A pool of ``workers`` threads downloading finished jobs' results.

    ``access(backend_name)`` returns a :class:`BackendAccess` (called per attempt, so a
    refreshed token is picked up).
    """

    def __init__(
        self,
        output_dir: Path | str,
        access: Callable[[str], BackendAccess],
        *,
        workers: int = 2,
        max_attempts: int = 3,
        retry_base: float = 1.0,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.output_dir = Path(output_dir)
        self._access = access
        self._workers_wanted = max(1, int(workers))
        self.max_attempts = max(1, int(max_attempts))
        self.retry_base = retry_base
        self.chunk_size = chunk_size
        self._tasks: queue.Queue[Optional[DownloadTask]] = queue.Queue()
        self._results: queue.Queue[DownloadResult] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        #: Test hook: called with (point, task) at named points of a download.
        self.checkpoint: Optional[Callable[[str, DownloadTask], None]] = None

    # -- pool ----------------------------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self._workers_wanted and not self._stop.is_set():
            t = threading.Thread(target=self._worker, name=f"otj-download-{len(self._threads)}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, task: DownloadTask) -> bool:
        """Queue a download; False if that tile is already queued or in flight, or the pool stopped."""
        if self._stop.is_set():
            return False
        with self._lock:
            if task.fid in self._in_flight:
                return False
            self._in_flight.add(task.fid)
        self._tasks.put(task)
        self._ensure_workers()
        return True

    def poll(self) -> list[DownloadResult]:
        """Results finished since the last call (never blocks).

        A tile stays "in flight" until its result is handed out here, so whoever submits
        (the scheduler, between rounds) never sends a finished download again before it has
        seen the result."""
        out = []
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return out
            with self._lock:
                self._in_flight.discard(result.task.fid)
            out.append(result)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def in_flight_fids(self) -> set[int]:
        with self._lock:
            return set(self._in_flight)

    def stop(self, timeout: float = 0.5) -> None:
        """Cancel queued and running downloads; returns within ``timeout`` (workers are daemons and
        abandon their transfer at the next chunk, leaving only a ``.part`` file)."""
        self._stop.set()
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                task = self._tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            if task is None:
                return
            try:
                result = self.download(task)
            except Exception as e:  # noqa: BLE001 - a worker must survive anything
                _log.exception("Download of job %s crashed", task.job_id)
                result = DownloadResult(task, ok=False, error=redact(f"unexpected error: {e}"))
            self._results.put(result)  # still in flight until poll() hands the result out

    def _hook(self, point: str, task: DownloadTask) -> None:
        if self.checkpoint is not None:
            self.checkpoint(point, task)

    # -- one job --------------------------------------------------------------------------------------

    def download(self, task: DownloadTask) -> DownloadResult:
        """Download every asset of one job, with retries; runs in a worker (callable directly in tests)."""
        try:
            job_dir = job_dir_of(self.output_dir, task.job_id)
        except UnsafeNameError as e:
            return DownloadResult(task, ok=False, error=str(e), refused=[str(task.job_id)])
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            if self._stop.is_set():
                return DownloadResult(task, ok=False, canceled=True, result_dir=str(job_dir))
            try:
                return self._download_once(task, job_dir)
            except DownloadCanceledError:
                return DownloadResult(task, ok=False, canceled=True, result_dir=str(job_dir))
            except Exception as e:  # noqa: BLE001 - classified below
                last_error = redact(f"{type(e).__name__}: {e}")
                kind = retry.classify(e)
                if kind == retry.AUTH:
                    self._auth_failed(task)
                _log.warning("Download of job %s, attempt %d failed: %s", task.job_id, attempt, last_error)
                if kind in (retry.CLIENT, retry.NOT_FOUND) and not isinstance(e, VerificationError):
                    break
                if attempt < self.max_attempts:
                    if self._stop.wait(self.retry_base * (2 ** (attempt - 1))):
                        return DownloadResult(task, ok=False, canceled=True, result_dir=str(job_dir))
        return DownloadResult(task, ok=False, error=last_error or "download failed", result_dir=str(job_dir))

    def _auth_failed(self, task: DownloadTask) -> None:
        try:
            access = self._access(task.backend)
            if access.on_auth_failure is not None:
                access.on_auth_failure()
        except Exception:  # noqa: BLE001
            _log.debug("cannot report the auth failure", exc_info=True)

    def _download_once(self, task: DownloadTask, job_dir: Path) -> DownloadResult:
        access = self._access(task.backend)
        session = access.new_session()
        try:
            results_url = access.root_url.rstrip("/") + f"/jobs/{task.job_id}/results"
            resp = session.get(results_url, auth=access.auth, timeout=access.timeout)
            _raise_for_status(resp)
            metadata = resp.json()
            if not isinstance(metadata, dict):
                raise VerificationError("job results metadata is not a JSON object")
            job_dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_parts(job_dir)
            assets = _stac_assets(metadata)
            files, refused, total = [], [], 0
            for name, asset in assets.items():
                try:
                    check_safe_name(name)
                except UnsafeNameError as e:
                    refused.append(str(name))
                    _log.warning("Job %s: %s", task.job_id, e)
                    continue
                href = asset.get("href") if isinstance(asset, dict) else None
                if not href:
                    raise VerificationError(f"asset {name!r} has no href")
                url = urljoin(results_url, href)
                if urlparse(url).scheme not in ("http", "https"):
                    refused.append(str(name))
                    continue
                auth = None if _is_external(url, access.root_url) else access.auth
                total += self._fetch_asset(session, url, auth, job_dir / name, asset, access.timeout, task)
                files.append(name)
            atomic_write_json(job_dir / RESULTS_FILENAME, metadata)
            if refused:
                return DownloadResult(
                    task,
                    ok=False,
                    result_dir=str(job_dir),
                    files=files,
                    refused=refused,
                    error=f"refused unsafe asset name(s): {', '.join(repr(r) for r in refused)}",
                    bytes=total,
                )
            if not files:
                return DownloadResult(task, ok=False, result_dir=str(job_dir), error="the job has no result assets")
            return DownloadResult(task, ok=True, result_dir=str(job_dir), files=files, bytes=total)
        finally:
            session.close()

    @staticmethod
    def _remove_stale_parts(job_dir: Path) -> None:
        for p in job_dir.glob("*" + PART_SUFFIX):
            try:
                p.unlink()
            except OSError:
                pass

    def _fetch_asset(
        self,
        session: requests.Session,
        url: str,
        auth: Any,
        target: Path,
        asset: dict,
        timeout: float,
        task: DownloadTask,
    ) -> int:
        expected_size = asset.get("file:size")
        checksum = asset.get("file:checksum")
        hasher, digest = None, None
        if isinstance(checksum, str) and checksum:
            try:
                algorithm, digest = parse_multihash(checksum)
                hasher = new_hasher(algorithm)
            except ValueError as e:
                _log.info("Cannot verify checksum of %s: %s", target.name, e)
        part = target.with_name(target.name + PART_SUFFIX)
        if part.is_symlink() or part.exists():
            part.unlink()
        written = 0
        with session.get(url, auth=auth, stream=True, timeout=timeout) as resp:
            _raise_for_status(resp)
            length = resp.headers.get("Content-Length")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                for chunk in resp.iter_content(chunk_size=self.chunk_size):
                    if self._stop.is_set():
                        raise DownloadCanceledError()
                    if not chunk:
                        continue
                    f.write(chunk)
                    written += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    self._hook("chunk", task)
                f.flush()
                os.fsync(f.fileno())
        if length is not None and resp.headers.get("Content-Encoding") in (None, "identity"):
            if int(length) != written:
                raise VerificationError(f"{target.name}: got {written} bytes, Content-Length said {length}")
        if isinstance(expected_size, int) and expected_size != written:
            raise VerificationError(f"{target.name}: got {written} bytes, file:size says {expected_size}")
        if hasher is not None and hasher.digest() != digest:
            raise VerificationError(f"{target.name}: checksum mismatch")
        self._hook("before_rename", task)
        os.replace(part, target)
        return written


def _raise_for_status(resp: requests.Response) -> None:
    if resp.status_code < 400:
        return
    code, message = None, resp.text[:300]
    try:
        body = resp.json()
        if isinstance(body, dict):
            code, message = body.get("code"), body.get("message") or message
    except ValueError:
        pass
    err = requests.HTTPError(redact(f"[{resp.status_code}] {code or ''}: {message}"), response=resp)
    err.http_status_code = resp.status_code  # type: ignore[attr-defined]
    err.code = code  # type: ignore[attr-defined]
    raise err
