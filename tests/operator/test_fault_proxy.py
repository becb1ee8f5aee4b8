"""The fault proxy on its own, against a small plain-HTTP upstream on loopback (no control plane): it refuses to
leave loopback, passes requests and chunked streams through, and injects exactly the faults its plan asks for."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from scale_scheduler.operator.dev.fault_proxy import FaultPlan, FaultProxy, FaultProxyError, require_loopback


def _kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """An upstream that echoes what it got (path, Authorization) and streams three chunks on ?watch=1."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "1":
            reply = web.StreamResponse()
            await reply.prepare(request)
            for i in range(3):
                await reply.write(json.dumps({"type": "ADDED", "object": {"n": i}}).encode() + b"\n")
                await asyncio.sleep(0.05)
            await reply.write_eof()
            return reply
        body = await request.read()
        return web.json_response(
            {"path": request.path_qs, "auth": request.headers.get("Authorization"), "body": body.decode()}
        )

    ready, stop = threading.Event(), threading.Event()
    address: list[str] = []

    def serve() -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            address.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await runner.cleanup()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield address[0]
    stop.set()
    thread.join(10)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("host", ["10.0.0.5", "0.0.0.0", "example.com", "192.168.1.1"])
def test_refuses_a_non_loopback_address(host: str) -> None:
    with pytest.raises(FaultProxyError, match="only runs on loopback"):
        require_loopback(host, "the listen address")


def test_refuses_a_non_loopback_listen_address_or_upstream(tmp_path: Path) -> None:
    local = _kubeconfig(tmp_path / "local.yaml", "https://127.0.0.1:6443")
    with pytest.raises(FaultProxyError, match="listen address '0.0.0.0'"):
        FaultProxy(local, FaultPlan(), host="0.0.0.0")
    remote = _kubeconfig(tmp_path / "remote.yaml", "https://api.example.com:6443")
    with pytest.raises(FaultProxyError, match="upstream API server 'api.example.com'"):
        FaultProxy(remote, FaultPlan())


def test_a_plan_with_impossible_fractions_is_refused() -> None:
    with pytest.raises(FaultProxyError, match="at most 1"):
        FaultPlan(error_fraction=0.7, drop_fraction=0.5)


def test_passes_requests_and_streams_through_with_the_upstream_credentials(upstream: str, tmp_path: Path) -> None:
    with FaultProxy(_kubeconfig(tmp_path / "k.yaml", upstream), FaultPlan(error_fraction=1.0)) as proxy:
        status, _, body = _get(proxy.url + "/api/v1/pods?limit=1")  # not armed: no faults
        assert status == 200
        assert json.loads(body) == {"path": "/api/v1/pods?limit=1", "auth": "Bearer secret-token", "body": ""}
        status, _, body = _get(proxy.url + "/api/v1/pods?watch=1")
        assert status == 200 and [json.loads(line)["object"]["n"] for line in body.splitlines()] == [0, 1, 2]
        client = yaml.safe_load(proxy.write_kubeconfig(tmp_path / "client.yaml").read_text())
        assert client["clusters"][0]["cluster"]["server"] == proxy.url and client["users"][0]["user"] == {}
    assert proxy.faults == 0 and proxy.counts["forwarded"] == 2


def test_answers_with_status_errors_while_armed_and_stops_after_max_faults(upstream: str, tmp_path: Path) -> None:
    plan = FaultPlan(error_fraction=1.0, max_faults=6, seed=3)
    with FaultProxy(_kubeconfig(tmp_path / "k.yaml", upstream), plan) as proxy:
        proxy.arm()
        replies = [_get(proxy.url + f"/api/v1/pods?n={i}") for i in range(8)]
    codes = [status for status, _, _ in replies]
    assert all(code in (429, 500, 503) for code in codes[:6]) and codes[6:] == [200, 200]
    for code, headers, body in replies[:6]:
        status = json.loads(body)
        assert status["kind"] == "Status" and status["code"] == code
        assert (headers.get("Retry-After") == "1") == (code == 429)
    assert proxy.faults == 6 and sum(proxy.counts[k] for k in ("429", "500", "503")) == 6


def test_the_same_seed_faults_the_same_requests(upstream: str, tmp_path: Path) -> None:
    def codes() -> list[int]:
        with FaultProxy(_kubeconfig(tmp_path / "k.yaml", upstream), FaultPlan(error_fraction=0.5, seed=7)) as proxy:
            proxy.arm()
            return [_get(proxy.url + "/api/v1/pods")[0] for _ in range(12)]

    first = codes()
    assert first == codes() and 200 in first and set(first) - {200}


def test_drops_connections_and_open_streams(upstream: str, tmp_path: Path) -> None:
    with FaultProxy(_kubeconfig(tmp_path / "k.yaml", upstream), FaultPlan(drop_fraction=1.0, seed=1)) as proxy:
        proxy.arm()
        for _ in range(4):
            with pytest.raises((urllib.error.URLError, ConnectionError, socket.error)):
                _get(proxy.url + "/api/v1/pods")
    assert proxy.counts["drop_before"] + proxy.counts["drop_after"] == 4
    assert proxy.counts["forwarded"] == proxy.counts["drop_after"]  # those reached the server first


def test_expired_watches_get_a_410_error_event_and_everything_else_passes(upstream: str, tmp_path: Path) -> None:
    with FaultProxy(_kubeconfig(tmp_path / "k.yaml", upstream), FaultPlan(expire_watch_fraction=1.0)) as proxy:
        proxy.arm()
        status, _, body = _get(proxy.url + "/api/v1/pods?watch=1&resourceVersion=5")
        assert status == 200 and [json.loads(line) for line in body.splitlines()] == [
            {"type": "ERROR", "object": json.loads(body)["object"]}
        ]
        assert json.loads(body)["object"]["code"] == 410
        assert _get(proxy.url + "/api/v1/pods")[0] == 200
    assert proxy.counts["expired_watch"] == 1 and proxy.counts["forwarded"] == 1
