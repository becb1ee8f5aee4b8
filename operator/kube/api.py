"""The operator's calls to the API server: binding, pods, Events and WorkflowDAG status.

Raw JSON requests through the ``kubernetes`` client's ``ApiClient`` (its configuration, TLS and
credentials), not its generated models: the Binding reply is a Status the models cannot read, and
plain dicts are what kopf's watch events carry too. Blocking calls run in a pool of ``API_CONCURRENCY`` threads
of this API's own (asyncio's default pool has cpu count + 4: six requests in flight on two cores, which capped
the operator's binding rate far below kube-scheduler's, whose requests are API round trips too); 429, 5xx,
optimistic-lock 409s and dropped or refused connections are retried here (tenacity: the server's Retry-After
when it gives one, else jittered exponential backoff), so callers see success or an answer to act on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.times import now as _now
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

log = logging.getLogger(__name__)

COMPONENT = "scale-scheduler"
RETRY_ATTEMPTS = 6  # about 4 s of backoff in all before the caller sees the error
RETRY_AFTER_CAP = 10.0  # seconds: a longer Retry-After is the next reconcile's business, not this call's
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
REQUEST_TIMEOUT = 30.0
# Requests in flight at once (the create and bind of many pods are concurrent); each thread keeps one pooled
# connection, so there is no TLS handshake per request.
API_CONCURRENCY = 16


class BindOutcome(StrEnum):
    BOUND = "bound"
    ALREADY_DONE = "already-done"  # 409 already assigned / being deleted: a previous incarnation did it
    GONE = "gone"  # 404: the pod was deleted meanwhile


def api_message(error: ApiException) -> str:
    """The API server's own words for a refusal (the Status object's message), else its HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.body or f"HTTP {error.status} {error.reason}")


def _retryable(error: BaseException) -> bool:
    # A connection refused, reset or dropped before the reply is the transport's failure, not an answer; a
    # request that reached the server first is safe to repeat: pod names are deterministic (a second create is a
    # 409, read back) and a second bind is a 409 "already assigned". A timeout is not retried: it would hold the
    # reconcile for another REQUEST_TIMEOUT each time.
    if isinstance(error, (ProtocolError, NewConnectionError)) or (
        isinstance(error, MaxRetryError) and isinstance(error.reason, (ProtocolError, NewConnectionError))
    ):
        return True
    # A 409 saying the thing is done (already exists / assigned) or cannot be done (being deleted) is an answer.
    final = ("already", "being deleted")
    return isinstance(error, ApiException) and (
        error.status in (429, 500, 502, 503, 504)
        or (error.status == 409 and not any(text in str(error.body) for text in final))
    )


_backoff = wait_random_exponential(multiplier=0.1, max=2.0)


def _wait(state: RetryCallState) -> float:
    """The server's Retry-After (429, 503) when it gives one, else jittered exponential backoff."""
    error = state.outcome.exception() if state.outcome else None
    retry_after = ((getattr(error, "headers", None) or {}).get("Retry-After") or "").strip()
    if retry_after.isdigit():
        return min(float(retry_after), RETRY_AFTER_CAP)
    return float(_backoff(state))


def _log_retry(state: RetryCallState, what: str) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    failure = f"HTTP {error.status}" if isinstance(error, ApiException) else type(error).__name__
    log.info("%s: %s, retrying in %.2fs", what, failure, wait)


def owned_by(pods: list[dict[str, Any]], owner_uid: str) -> list[dict[str, Any]]:
    """The pods owned by the object with ``owner_uid`` (one WorkflowDAG incarnation)."""
    return [
        pod for pod in pods if any(ref.get("uid") == owner_uid for ref in pod["metadata"].get("ownerReferences") or [])
    ]


def pooled_api_client() -> client.ApiClient:
    """An ``ApiClient`` on the loaded configuration whose connection pool holds a connection per thread of
    ``KubeApi`` (urllib3 opens any connection beyond its pool's size afresh for each request, and drops it)."""
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


class KubeApi:
    """The few API calls the controller makes, as plain-dict coroutines."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        # threads start on demand: an idle operator holds none
        self._threads = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube-api")

    def _request_sync(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None, content_type: str = JSON
    ) -> dict[str, Any]:
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT
        )
        data: bytes = response.read()
        if response.status >= 400:
            error = ApiException(
                status=response.status, reason=response.reason, body=data.decode("utf-8", "replace") if data else ""
            )
            error.headers = response.getheaders()
            raise error
        reply: dict[str, Any] = json.loads(data) if data else {}
        return reply

    async def request(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None, content_type: str = JSON
    ) -> dict[str, Any]:
        """One API call; retried on 429/5xx/conflicts, other errors raised as ApiException."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=_wait,
            stop=stop_after_attempt(RETRY_ATTEMPTS),
            reraise=True,
            before_sleep=lambda state: _log_retry(state, f"{method} {path}"),
        ):
            with attempt:
                return await asyncio.get_running_loop().run_in_executor(
                    self._threads, partial(self._request_sync, method, path, body, query, content_type)
                )
        raise AssertionError("unreachable: tenacity returns or re-raises")

    # -- WorkflowDAGs --------------------------------------------------------------------------------
    @staticmethod
    def _workflow_path(namespace: str, name: str) -> str:
        return f"/apis/{labels.GROUP}/{labels.VERSION}/namespaces/{namespace}/{labels.PLURAL}/{name}"

    async def get_workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", self._workflow_path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def delete_workflow(self, namespace: str, name: str) -> None:
        """Delete a WorkflowDAG (its TTL ran out); its pods follow through their ownerReferences."""
        try:
            await self.request(
                "DELETE", self._workflow_path(namespace, name), query={"propagationPolicy": "Background"}
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_workflow_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch: keys we do not mention (kopf's bookkeeping) stay as they are. A 404 (deleted while it
        was reconciled) is no error: the next reconcile finds it gone and forgets it."""
        try:
            await self.request(
                "PATCH", self._workflow_path(namespace, name) + "/status", {"status": status}, content_type=MERGE_PATCH
            )
        except ApiException as error:
            if error.status != 404:
                raise

    # -- config maps (a workflow's outputs, the learned run times) -----------------------------------
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap, or None when there is none of that name."""
        try:
            return await self.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{quote(name)}")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def patch_config_map(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Merge ``data`` into the ConfigMap's data (ApiException 404 when it does not exist)."""
        await self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{quote(name)}",
            {"data": data},
            content_type=MERGE_PATCH,
        )

    async def create_config_map(self, manifest: dict[str, Any]) -> None:
        await self.request("POST", f"/api/v1/namespaces/{manifest['metadata']['namespace']}/configmaps", manifest)

    # -- pods and nodes ------------------------------------------------------------------------------
    async def list_workflow_pods(self, namespace: str, selector_value: str) -> list[dict[str, Any]]:
        """Pods carrying the workflow label, of any incarnation of that name: keep yours with ``owned_by``.

        The owner's uid is not a parameter so the list can be fetched while the WorkflowDAG itself is.
        """
        reply = await self.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            query={"labelSelector": f"{labels.WORKFLOW_LABEL}={selector_value}"},
        )
        return reply.get("items") or []

    async def list_unfinished_pods_outside(self, namespaces: Iterable[str]) -> list[dict[str, Any]]:
        """Every Pending or Running pod of all namespaces but ``namespaces``, as plain dicts like watch events carry."""
        outside = [f"metadata.namespace!={namespace}" for namespace in namespaces]
        selector = ",".join([*outside, "status.phase!=Succeeded", "status.phase!=Failed"])
        return await self._list("Pod", "/api/v1/pods", {"fieldSelector": selector})

    async def list_all(self, what: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every node, or every pod (of ``namespace`` if given), as plain dicts like watch events carry."""
        if what == "nodes":
            return await self._list("Node", "/api/v1/nodes")
        return await self._list("Pod", f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods")

    async def _list(self, kind: str, path: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        reply = await self.request("GET", path, query=query)
        return [{"apiVersion": "v1", "kind": kind, **item} for item in reply.get("items") or []]

    def _pod_path(self, namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/pods/{quote(name)}"

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.request("GET", self._pod_path(namespace, name))

    async def create_pod(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the pod; (pod, created). An existing pod of that name (409) is read back instead.

        Strict field validation: a misspelt field the user passed through (env, volumes, securityContext ...) is
        refused with the API's message naming it, not dropped with a warning nobody reads."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return await self.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", manifest, query={"fieldValidation": "Strict"}
            ), True
        except ApiException as error:
            if error.status != 409:
                raise
        return await self.read_pod(namespace, name), False

    async def patch_pod_annotations(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            self._pod_path(namespace, name),
            {"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
        )

    async def mark_unschedulable(self, namespace: str, name: str, message: str) -> None:
        """PodScheduled=False/Unschedulable, what kube-scheduler sets on a pod it cannot place now."""
        body = {
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastTransitionTime": _now(),
                    }
                ]
            }
        }
        try:  # strategic merge: conditions merge by type
            await self.request(
                "PATCH", self._pod_path(namespace, name) + "/status", body, content_type=STRATEGIC_MERGE_PATCH
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def fail_pod(self, namespace: str, name: str, reason: str, message: str) -> None:
        """Mark a pod Failed, as its kubelet does when it kills it (a 404 means it is gone already)."""
        body = {"status": {"phase": "Failed", "reason": reason, "message": message}}
        try:
            await self.request("PATCH", self._pod_path(namespace, name) + "/status", body, content_type=MERGE_PATCH)
        except ApiException as error:
            if error.status != 404:
                raise

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete at once (grace 0): used for pods whose node no longer exists, so no kubelet will confirm."""
        try:
            await self.request("DELETE", self._pod_path(namespace, name), query={"gracePeriodSeconds": "0"})
        except ApiException as error:
            if error.status != 404:
                raise

    async def bind(self, namespace: str, name: str, node: str) -> BindOutcome:
        """POST the pod's Binding subresource; 409 means someone (our previous incarnation) already bound it.

        Any other refusal is raised (ApiException) for the caller to tell the user."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.request("POST", self._pod_path(namespace, name) + "/binding", body)
            return BindOutcome.BOUND
        except ApiException as error:
            if error.status == 409:
                return BindOutcome.ALREADY_DONE
            if error.status == 404:
                return BindOutcome.GONE
            raise
