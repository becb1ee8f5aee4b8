"""A fault-injecting proxy between the operator and the API server, for the fault tests: what an overloaded or
flaky control plane (or the network in front of it) does to a client, on loopback only.

It listens on plain HTTP at 127.0.0.1 and forwards every request to the kubeconfig's API server over TLS with the
kubeconfig's own credentials, streaming replies chunk by chunk (watches are long-lived chunked streams). While its
fault window is open it answers a fraction of requests itself with 429 (``Retry-After: 1``), 500 or 503 and a
Kubernetes Status body, and drops a fraction of connections abruptly: before the request reaches the server, after
the server acted on it but before the reply (a write that happened and whose answer was lost), and open watch
streams mid-way. Which requests get a fault is drawn from a seeded random stream, in the order requests arrive.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import random
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from aiohttp import web

# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp sets itself for the reply it streams.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_STATUS_REASONS = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
FAULT_KINDS = ("429", "500", "503", "drop_before", "drop_after", "drop_stream", "expired_watch")


class FaultProxyError(ValueError):
    """The proxy was asked for something it will not do (a non-loopback address, a kubeconfig it cannot read)."""


@dataclass(frozen=True)
class FaultPlan:
    """Which faults, how often and when. Fractions are of the requests that arrive while the window is open
    (``error_fraction`` split evenly between 429, 500 and 503); each open watch stream is dropped with probability
    ``stream_drop_fraction`` once per ``stream_check_seconds``. The window opens ``start_seconds`` after ``arm()``
    and closes ``end_seconds`` after it, or once ``max_faults`` faults were injected, whichever comes first."""

    error_fraction: float = 0.0
    drop_fraction: float = 0.0
    stream_drop_fraction: float = 0.0
    stream_check_seconds: float = 1.0
    # of watch requests answered as the API server answers a resourceVersion already compacted away (after a long
    # partition): an ERROR event with a 410 Expired Status, so the client lists afresh
    expire_watch_fraction: float = 0.0
    start_seconds: float = 0.0
    end_seconds: float = 30.0
    max_faults: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_fraction", "drop_fraction", "stream_drop_fraction", "expire_watch_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaultProxyError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.error_fraction + self.drop_fraction > 1.0:
            raise FaultProxyError("error_fraction + drop_fraction must be at most 1")
        if not 0.0 <= self.start_seconds <= self.end_seconds:
            raise FaultProxyError("the fault window needs 0 <= start_seconds <= end_seconds")


def require_loopback(host: str, what: str) -> None:
    """FaultProxyError unless ``host`` is a loopback address (or ``localhost``): the proxy never leaves the
    machine, neither listening nor forwarding."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise FaultProxyError(
            f"the fault proxy only runs on loopback: {what} {host!r} is not 127.0.0.0/8, ::1 or localhost"
        )


@dataclass(frozen=True)
class Upstream:
    """The API server and the credentials the kubeconfig gives for it."""

    server: str  # https://127.0.0.1:PORT
    ssl_context: ssl.SSLContext | bool
    token: str | None

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> Upstream:
        config = yaml.safe_load(Path(path).read_text())
        try:
            context_name = config["current-context"]
            context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
            cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
            user = next((u.get("user") or {} for u in config.get("users") or [] if u["name"] == context["user"]), {})
        except (KeyError, StopIteration, TypeError) as error:
            raise FaultProxyError(f"{path}: no usable current context ({error!r})") from None
        server = str(cluster["server"]).rstrip("/")
        require_loopback(urlsplit(server).hostname or "", "the upstream API server")
        if not server.startswith("https://"):
            return cls(server, False, user.get("token"))
        context_ssl = ssl.create_default_context()
        with tempfile.TemporaryDirectory(prefix="fault-proxy-") as scratch:
            ca = _file_of(cluster, "certificate-authority", Path(scratch) / "ca.crt")
            if ca is not None:
                context_ssl.load_verify_locations(cafile=str(ca))
            if cluster.get("insecure-skip-tls-verify"):
                context_ssl.check_hostname, context_ssl.verify_mode = False, ssl.CERT_NONE
            cert = _file_of(user, "client-certificate", Path(scratch) / "client.crt")
            key = _file_of(user, "client-key", Path(scratch) / "client.key")
            if cert is not None:
                context_ssl.load_cert_chain(str(cert), str(key) if key else None)
        return cls(server, context_ssl, user.get("token"))


def _file_of(entry: dict[str, Any], field: str, scratch: Path) -> Path | None:
    """A kubeconfig field given as a path, or as inline ``<field>-data`` (written to ``scratch``)."""
    if entry.get(field):
        return Path(entry[field])
    if entry.get(f"{field}-data"):
        scratch.write_bytes(base64.b64decode(entry[f"{field}-data"]))
        return scratch
    return None


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch") in ("1", "true", "True")


class FaultProxy:
    """The proxy on a thread of its own (its own event loop), so a synchronous test drives it: ``start()``,
    ``arm()`` to open the fault window, ``counts`` of what was injected, ``stop()``. Also a context manager."""

    def __init__(self, kubeconfig: str | Path, plan: FaultPlan, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host, "the listen address")
        self.upstream = Upstream.from_kubeconfig(kubeconfig)
        self.plan = plan
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()  # fault kind -> injected; "forwarded" -> requests passed through
        self._random = random.Random(plan.seed)
        self._armed_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._streams: dict[int, web.Request] = {}  # open watch streams by arrival number
        self._arrivals = 0

    # -- control, from the test's thread ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise FaultProxyError(f"the fault proxy did not start within {timeout:.0f}s")
        if self._startup_error is not None:
            raise FaultProxyError(f"the fault proxy could not start: {self._startup_error}")
        return self

    def arm(self) -> None:
        """Open the fault window now (it starts ``plan.start_seconds`` from here)."""
        self._armed_at = time.monotonic()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def faults(self) -> int:
        return sum(self.counts[kind] for kind in FAULT_KINDS)

    def active(self) -> bool:
        """Whether the fault window is open now."""
        if self._armed_at is None:
            return False
        if self.plan.max_faults is not None and self.faults >= self.plan.max_faults:
            return False
        elapsed = time.monotonic() - self._armed_at
        return self.plan.start_seconds <= elapsed < self.plan.end_seconds

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for a client of the proxy: its plain-HTTP loopback address, no credentials (the proxy
        adds the upstream's)."""
        name = "fault-proxy"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url}}],
            "users": [{"name": name, "user": {}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
        Path(path).write_text(yaml.safe_dump(config))
        return Path(path)

    # -- the server, on its own loop -------------------------------------------------------------------
    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported to start(), which waits for this thread
            self._startup_error = error
            self._started.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        connector = aiohttp.TCPConnector(ssl=self.upstream.ssl_context, limit=0)
        # no total timeout: watches stay open for minutes
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
            self._session = session
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._started.set()
            dropper = asyncio.create_task(self._drop_streams())
            try:
                await self._stopping.wait()
            finally:
                dropper.cancel()
                await runner.cleanup()

    def _draw(self, watch: bool) -> str | None:
        """The fault for the request arriving now, if any (one draw per request, from the seeded stream)."""
        if not self.active():
            return None
        if watch and self.plan.expire_watch_fraction and self._random.random() < self.plan.expire_watch_fraction:
            return "expired_watch"
        roll = self._random.random()
        plan = self.plan
        if roll < plan.error_fraction:
            return ("429", "500", "503")[min(int(roll / plan.error_fraction * 3), 2)]
        if roll < plan.error_fraction + plan.drop_fraction:
            return "drop_before" if self._random.random() < 0.5 else "drop_after"
        return None

    async def _drop_streams(self) -> None:
        """Drop open watch streams now and then while the window is open."""
        while True:
            await asyncio.sleep(self.plan.stream_check_seconds)
            if not self.active() or not self.plan.stream_drop_fraction:
                continue
            for number in sorted(self._streams):  # oldest first: a stable order for the seeded draws
                if self.active() and self._random.random() < self.plan.stream_drop_fraction:
                    self.counts["drop_stream"] += 1
                    _abort(self._streams.pop(number))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._draw(_is_watch(request))
        if fault in ("429", "500", "503"):
            self.counts[fault] += 1
            return _status_reply(int(fault), request)
        if fault == "expired_watch":
            self.counts[fault] += 1
            return _expired_watch()
        if fault == "drop_before":
            self.counts[fault] += 1
            _abort(request)
            return web.Response(status=499)  # never sent: the connection is gone
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self.upstream.token:
            headers["Authorization"] = f"Bearer {self.upstream.token}"
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream.server + request.path_qs,
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
            )
        except aiohttp.ClientError as error:
            return _status_reply(503, request, f"fault proxy: upstream unreachable: {error}")
        self.counts["forwarded"] += 1
        async with upstream:
            if fault == "drop_after":  # the server acted; its answer is lost
                self.counts[fault] += 1
                _abort(request)
                return web.Response(status=499)
            reply = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    reply.headers.add(key, value)
            await reply.prepare(request)
            self._arrivals += 1
            number = self._arrivals
            if _is_watch(request):
                self._streams[number] = request
            try:
                async for chunk in upstream.content.iter_any():
                    await reply.write(chunk)
                await reply.write_eof()
            except (ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError, RuntimeError):
                _abort(request)  # either side went away (or was dropped): end the other side too
            finally:
                self._streams.pop(number, None)
        return reply


def _status_reply(code: int, request: web.Request, message: str | None = None) -> web.Response:
    """What the API server answers when it sheds load or fails: a Status object (and Retry-After on a 429)."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or f"fault proxy: injected {code} for {request.method} {request.path}",
        "reason": _STATUS_REASONS.get(code, "InternalError"),
        "code": code,
    }
    headers = {"Retry-After": "1"} if code == 429 else {}
    return web.Response(status=code, text=json.dumps(status), content_type="application/json", headers=headers)


def _expired_watch() -> web.Response:
    """A watch from a resourceVersion etcd has compacted: 200, then one ERROR event carrying a 410 Status."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "fault proxy: too old resource version (injected)",
        "reason": "Expired",
        "code": 410,
    }
    return web.Response(text=json.dumps({"type": "ERROR", "object": status}) + "\n", content_type="application/json")


def _abort(request: web.Request) -> None:
    """Close the client's connection abruptly (a reset, no reply)."""
    if request.transport is not None:
        request.transport.abort()
