"""Where work units run: in this process, or as Ray tasks on a local Ray or a Ray cluster.

Every caller that fans out (evaluate's cells, the suite's scenarios, PPO's rollout groups, label generation) goes
through ``run_units``: results come back in the units' order whatever the number of workers, so the same seeds give
the same numbers with one worker or many. Ray is imported only when workers are asked for: the default path pays
neither its import nor its start-up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

Context = TypeVar("Context")
Unit = TypeVar("Unit")
Result = TypeVar("Result")

RAY_MISSING = "Ray is not installed: pip install 'scale-scheduler[ray]'"
# a local Ray's shared-memory object store: results here are small (episode metrics, one iteration's
# trajectories), and the default (30% of RAM) would take memory that other processes on the machine need
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
ADDRESS_TIMEOUT_SECONDS = 5.0


class WorkersUnavailable(Exception):
    """Workers were asked for and cannot be had; the message is one line for the user."""


@dataclass(frozen=True)
class Workers:
    """``count``: at most this many units at a time (``None``: one, or with an address every CPU of the cluster);
    ``address``: a running Ray cluster's (``host:port``, ``ray://host:port`` or ``auto``), else a local Ray of
    ``count`` CPUs is started when ``count`` > 1."""

    count: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise WorkersUnavailable(f"workers must be at least 1 (got {self.count})")

    @property
    def distributed(self) -> bool:
        return self.address is not None or (self.count or 1) > 1


IN_PROCESS = Workers()


def _import_ray() -> Any:  # the ray module
    try:
        import ray
    except ImportError:
        raise WorkersUnavailable(RAY_MISSING) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at: Ray itself retries for a minute before giving up."""
    if address in ("auto", "local"):
        return  # Ray looks these up itself and fails at once when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise WorkersUnavailable(f"Ray address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_SECONDS).close()
    except OSError as error:
        raise WorkersUnavailable(
            f"no Ray cluster answers at {address} ({error.strerror or error}); start one with `ray start --head`"
        ) from None


@contextmanager
def connected(workers: Workers) -> Iterator[None]:
    """Start or join Ray for ``workers`` (nothing in-process) and leave it on exit; raise ``WorkersUnavailable``
    before anything runs when that fails."""
    if not workers.distributed:
        yield
        return
    ray = _import_ray()
    if workers.address is not None:
        _check_reachable(workers.address)
        options: dict[str, Any] = {"address": workers.address}
    else:
        # "local": a new instance even where RAY_ADDRESS points at a cluster (--ray-address is the way to one)
        options = {"address": "local", "num_cpus": workers.count, "object_store_memory": LOCAL_OBJECT_STORE_BYTES}
    try:
        ray.init(**options, include_dashboard=False, logging_level=logging.WARNING)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError ... by case
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        # `ray start --head` turns token authentication on (Ray 2.60); a driver without the token is refused with
        # nothing but "failed to connect" in the exception, so say what usually fixes it
        hint = " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token: docs/scale-out.md)"
        raise WorkersUnavailable(
            f"cannot start or join Ray at {workers.address or 'a local instance'}: {message}"
            + (hint if "Failed to connect" in message else "")
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _run_unit(setup: Callable[[], Any], work: Callable[[Any, Any], Any], unit: Any) -> Any:
    return work(setup(), unit)


@cache
def _remote_run_unit() -> Any:  # ray.remote_function.RemoteFunction, exported to the cluster once per process
    return _import_ray().remote(num_cpus=1)(_run_unit)


def run_units(
    setup: Callable[[], Context],
    work: Callable[[Context, Unit], Result],
    units: Sequence[Unit],
    workers: Workers = IN_PROCESS,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """``[work(setup(), unit) for unit in units]``, in that order.

    In-process ``setup`` runs once; on Ray once per unit, inside the worker (so schedulers and models are built
    there from names, paths and weights, never shipped as objects): a unit must give the same result whatever
    ran before it in its process. ``on_result`` sees each result as it comes back (progress), on Ray in
    completion order. Inside ``connected(workers)`` when distributed.
    """
    if not workers.distributed:
        context = setup()
        results = []
        for unit in units:
            results.append(work(context, unit))
            if on_result:
                on_result(results[-1])
        return results
    ray = _import_ray()
    if not ray.is_initialized():
        raise RuntimeError("run_units with workers needs Ray connected: wrap the call in parallel.connected(workers)")
    remote = _remote_run_unit()
    setup_ref, work_ref = ray.put(setup), ray.put(work)
    # a local Ray has exactly ``count`` CPUs and queues the rest itself, so the next unit is waiting the moment a
    # worker frees up; on a cluster ``count`` caps the units in flight
    limit = workers.count if workers.address is not None and workers.count else len(units)
    pending: dict[Any, int] = {}  # ObjectRef -> unit index
    done: dict[int, Result] = {}
    submitted = 0
    while len(done) < len(units):
        while submitted < len(units) and len(pending) < limit:
            pending[remote.remote(setup_ref, work_ref, units[submitted])] = submitted
            submitted += 1
        (ready, *_), _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready)
        done[index] = ray.get(ready)
        if on_result:
            on_result(done[index])
    return [done[index] for index in range(len(units))]
