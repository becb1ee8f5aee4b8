"""KubeApi retries what the API server asks it to retry (429, 5xx, optimistic-lock 409s) and dropped or refused
connections, and nothing else.

No API server: ``_request_sync`` is replaced by a script of replies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.kube import api as kube_api
from scale_scheduler.operator.kube.api import KubeApi
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError


def _error(status: int, body: str = "", retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="scripted")
    error.body = body
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


def _scripted(replies: list[Any]) -> tuple[KubeApi, list[str]]:
    api, calls = KubeApi(client.ApiClient()), []

    def request_sync(method: str, path: str, *_: Any) -> dict[str, Any]:
        calls.append(f"{method} {path}")
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return dict(reply)

    api._request_sync = request_sync  # type: ignore[method-assign]
    return api, calls


def test_throttling_and_server_errors_are_retried_after_the_servers_retry_after(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kube_api, "RETRY_AFTER_CAP", 0.01)  # "Retry-After: 30", capped: the test does not wait 30 s
    api, calls = _scripted([_error(429, retry_after="30"), _error(503), {"ok": True}])
    with caplog.at_level(logging.INFO, logger=kube_api.__name__):
        assert asyncio.run(api.request("GET", "/api/v1/pods")) == {"ok": True}
    assert calls == ["GET /api/v1/pods"] * 3
    assert "HTTP 429, retrying in 0.01s" in caplog.text  # the server's figure (capped), not the backoff's


@pytest.mark.parametrize("error", [_error(404), _error(403), _error(409, body='pods "p" already exists')])
def test_answers_are_not_retried(error: ApiException) -> None:
    api, calls = _scripted([error, {"ok": True}])
    with pytest.raises(ApiException) as raised:
        asyncio.run(api.request("POST", "/api/v1/namespaces/ns/pods"))
    assert raised.value.status == error.status
    assert len(calls) == 1


def test_a_persistent_error_is_raised_after_the_last_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_api, "RETRY_AFTER_CAP", 0.0)
    api, calls = _scripted([_error(500, retry_after="0")] * kube_api.RETRY_ATTEMPTS)
    with pytest.raises(ApiException):
        asyncio.run(api.request("GET", "/api/v1/nodes"))
    assert len(calls) == kube_api.RETRY_ATTEMPTS


@pytest.mark.parametrize(
    "dropped",
    [
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        MaxRetryError(None, "/api/v1/pods", NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    ],
)
def test_a_dropped_or_refused_connection_is_retried_but_a_timeout_is_not(
    monkeypatch: pytest.MonkeyPatch, dropped: Exception
) -> None:
    monkeypatch.setattr(kube_api, "_backoff", lambda _state: 0.0)
    api, calls = _scripted([dropped, {"ok": True}])
    assert asyncio.run(api.request("POST", "/api/v1/namespaces/ns/pods")) == {"ok": True}
    assert len(calls) == 2
    api, calls = _scripted([ReadTimeoutError(None, "/api/v1/pods", "read timed out"), {"ok": True}])  # type: ignore[arg-type]
    with pytest.raises(ReadTimeoutError):
        asyncio.run(api.request("GET", "/api/v1/pods"))
    assert len(calls) == 1
