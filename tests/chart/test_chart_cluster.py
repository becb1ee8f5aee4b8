"""The chart against the real local control plane: server-side validation, install, and the operator
running with the chart's ServiceAccount (so the chart's RBAC, not admin rights, is what is tested)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from scale_scheduler.operator.core.estimate_store import CONFIG_MAP_NAME, DATA_KEY
from scale_scheduler.operator.dev import demo
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import running_operator

from .helmtools import CHART_DIR, REPO_ROOT, helm

CLUSTER_NAME = f"chart-test-{os.getpid()}"  # two test runs at once (a CI clone beside a checkout) must not share it
SERVICE_ACCOUNT = "system:serviceaccount:scale-scheduler:scale-scheduler"


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    """A local control plane with 4 simulated nodes, via the public `scale-sched cluster` command, or the
    cluster in $SCALE_SCHED_TEST_KUBECONFIG when set (helm and kubectl then come from the cached build)."""
    if os.environ.get("SCALE_SCHED_TEST_KUBECONFIG"):
        yield {"kubeconfig": os.environ["SCALE_SCHED_TEST_KUBECONFIG"], "bin_dir": str(kwok.ensure_binaries())}
        return
    up = subprocess.run(
        [*demo.SCALE_SCHED, "cluster", "up", "--nodes", "4", "--name", CLUSTER_NAME, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if up.returncode != 0:
        pytest.fail(f"scale-sched cluster up failed:\n{up.stderr[-2000:]}")
    info = json.loads(up.stdout.strip().splitlines()[-1])
    try:
        yield info
    finally:
        subprocess.run(
            [*demo.SCALE_SCHED, "cluster", "down", "--name", CLUSTER_NAME],
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def kube(cluster: dict[str, Any]) -> demo.Kube:
    return demo.Kube(cluster["kubeconfig"], cluster.get("bin_dir"))


def _kubectl(kube: demo.Kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kube.kubectl, "--kubeconfig", kube.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["extender.enabled=true", "extender.schedulerConfig.enabled=true"],
        ["replicas=2", "peering.enabled=true", "watchAllNamespaces=false"],
    ],
)
def test_rendered_chart_passes_server_side_dry_run(kube: demo.Kube, values: list[str]) -> None:
    _kubectl(kube, "create", "namespace", "scale-scheduler")
    crds = _kubectl(kube, "apply", "-f", str(CHART_DIR / "crds"))  # as helm install does before the templates
    assert crds.returncode == 0, crds.stderr
    args = ["template", "scale-scheduler", str(CHART_DIR), "--namespace", "scale-scheduler"]
    for value in values:
        args += ["--set", value]
    rendered = helm(*args).stdout
    result = _kubectl(kube, "apply", "--dry-run=server", "-f", "-", stdin=rendered)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == sum(1 for doc in yaml.safe_load_all(rendered) if doc)


def test_chart_crds_pass_server_side_dry_run(kube: demo.Kube) -> None:
    crds = sorted((CHART_DIR / "crds").glob("*.yaml"))
    assert crds, "the chart ships the WorkflowDAG CRD in crds/"
    for crd in crds:
        result = _kubectl(kube, "apply", "--dry-run=server", "-f", str(crd))
        assert result.returncode == 0, result.stderr


def _service_account_kubeconfig(kube: demo.Kube, directory: Path) -> Path:
    """A kubeconfig whose only credential is a TokenRequest token for the chart's ServiceAccount."""
    token = _kubectl(kube, "-n", "scale-scheduler", "create", "token", "scale-scheduler", "--duration", "1h")
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "scale-scheduler", "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "scale-scheduler"}}],
    }
    path = directory / "service-account.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_helm_install_then_operator_with_the_chart_service_account_completes_a_workflow(
    kube: demo.Kube, tmp_path: Path
) -> None:
    installed = kube.helm_install(["replicas=0", "policy=least-loaded"], timeout=300)
    assert "STATUS: deployed" in installed
    assert "kubectl get workflowdags -A -w" in installed  # NOTES.txt tells the user what to do next

    can_bind = _kubectl(kube, "auth", "can-i", "create", "pods/binding", "--as", SERVICE_ACCOUNT, "-A")
    assert can_bind.stdout.strip() == "yes"
    can_delete_nodes = _kubectl(kube, "auth", "can-i", "delete", "nodes", "--as", SERVICE_ACCOUNT)
    assert can_delete_nodes.stdout.strip() == "no"

    sa_kubeconfig = _service_account_kubeconfig(kube, tmp_path)
    sample = sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml"))[0]
    console = Console(quiet=True)
    with demo.operator_process(str(sa_kubeconfig), "least-loaded", 20.0, 120, console) as log_path:
        applied = _kubectl(kube, "apply", "-f", str(sample))
        assert applied.returncode == 0, applied.stderr
        demo.wait_for_workflows(kube, 1, 300, console, log_path)
        log = log_path.read_text()
    placements, results = demo.collect(kube)
    assert results and all(r.phase.lower() == "succeeded" for r in results), results
    assert placements and all(p.node != "-" for p in placements)
    assert "Forbidden" not in log and " 403" not in log, "the chart's RBAC must cover everything the operator does"


def _token_kubeconfig(kube: demo.Kube, directory: Path, namespace: str, account: str) -> Path:
    """A kubeconfig whose only credential is a TokenRequest token for ``namespace/account``."""
    token = _kubectl(kube, "-n", namespace, "create", "token", account, "--duration", "1h")
    assert token.returncode == 0, token.stderr
    cluster = yaml.safe_load(Path(kube.kubeconfig).read_text())["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "user",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "user", "context": {"cluster": "local", "user": account, "namespace": namespace}}],
    }
    path = directory / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_user_bound_to_edit_can_create_a_workflow_and_one_bound_to_view_only_read(
    kube: demo.Kube, tmp_path: Path
) -> None:
    crds = _kubectl(kube, "apply", "-f", str(CHART_DIR / "crds"))
    assert crds.returncode == 0, crds.stderr
    # only the user roles, under a release name of their own (another test installs the whole chart)
    roles = helm("template", "tenancy", str(CHART_DIR), "--show-only", "templates/aggregate-roles.yaml").stdout
    applied = _kubectl(kube, "apply", "-f", "-", stdin=roles)
    assert applied.returncode == 0, applied.stderr
    namespace = f"team-{os.getpid()}"
    _kubectl(kube, "create", "namespace", namespace)
    for account, role in (("developer", "edit"), ("auditor", "view")):
        assert _kubectl(kube, "-n", namespace, "create", "serviceaccount", account).returncode == 0
        bound = _kubectl(
            kube,
            "-n",
            namespace,
            "create",
            "rolebinding",
            account,
            f"--clusterrole={role}",
            f"--serviceaccount={namespace}:{account}",
        )
        assert bound.returncode == 0, bound.stderr
    developer = _token_kubeconfig(kube, tmp_path, namespace, "developer")
    auditor = _token_kubeconfig(kube, tmp_path, namespace, "auditor")
    sample = sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml"))[0]
    deadline = time.monotonic() + 30  # the ClusterRole aggregation controller folds the rules in shortly
    while (created := _kubectl(kube, "--kubeconfig", str(developer), "apply", "-f", str(sample))).returncode:
        assert time.monotonic() < deadline, created.stderr
        time.sleep(0.5)
    listed = _kubectl(kube, "--kubeconfig", str(auditor), "get", "workflowdags")
    assert listed.returncode == 0 and yaml.safe_load(sample.read_text())["metadata"]["name"] in listed.stdout
    refused = _kubectl(kube, "--kubeconfig", str(auditor), "delete", "workflowdags", "--all")
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    status = _kubectl(
        kube,
        "--kubeconfig",
        str(developer),
        "patch",
        "workflowdags",
        "--all",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Succeeded"}}',
    )
    assert status.returncode != 0, "status is the operator's to write"


def _tiny_workflow(name: str) -> str:
    """Two busybox steps, one after the other and handed the first's output (on the simulated nodes they run for
    their drawn duration, and the first reports its simulatedOutput)."""
    step = {"kind": "tool_call", "workSeconds": 2.0, "image": "busybox:1.36", "command": ["true"]}
    return json.dumps(
        {
            "apiVersion": "agentic.scale.dev/v1alpha1",
            "kind": "WorkflowDAG",
            "metadata": {"name": name},
            "spec": {
                "primitives": [
                    {"name": "first", "simulatedOutput": "hello", **step},
                    {"name": "second", "dependsOn": ["first"], **step},
                ]
            },
        }
    )


def test_an_operator_serving_two_namespaces_with_the_charts_roles_runs_both_and_leaves_a_third_alone(
    kube: demo.Kube, tmp_path: Path
) -> None:
    crds = _kubectl(kube, "apply", "-f", str(CHART_DIR / "crds"))
    assert crds.returncode == 0, crds.stderr
    release, served, other = f"ops-{os.getpid()}", (f"red-{os.getpid()}", f"blue-{os.getpid()}"), f"grey-{os.getpid()}"
    for namespace in (release, *served, other):
        assert _kubectl(kube, "create", "namespace", namespace).returncode == 0
    # the chart's objects under a release name of their own (another test installs the whole chart)
    rendered = helm(
        "template",
        "tenants",
        str(CHART_DIR),
        "--namespace",
        release,
        "--set",
        "replicas=0",
        "--set",
        "aggregateRoles=false",
        "--set",
        "watchAllNamespaces=false",
        "--set",
        f"watchNamespaces={{{','.join(served)}}}",
    ).stdout
    applied = _kubectl(kube, "apply", "-f", "-", stdin=rendered)
    assert applied.returncode == 0, applied.stderr
    account = "tenants-scale-scheduler"
    who = f"system:serviceaccount:{release}:{account}"
    for namespace, expected in ((served[0], "yes"), (served[1], "yes"), (other, "no")):
        can_create = _kubectl(kube, "auth", "can-i", "create", "pods", "--as", who, "-n", namespace)
        assert can_create.stdout.strip() == expected, f"create pods in {namespace}"
    cannot_bind_everywhere = _kubectl(kube, "auth", "can-i", "create", "pods/binding", "--as", who, "-A")
    assert cannot_bind_everywhere.stdout.strip() == "no", "no cluster-wide rights on what a Role grants"

    token_kubeconfig = _token_kubeconfig(kube, tmp_path, release, account)
    for namespace in (*served, other):
        created = _kubectl(kube, "-n", namespace, "apply", "-f", "-", stdin=_tiny_workflow("two-steps"))
        assert created.returncode == 0, created.stderr
    with running_operator(
        token_kubeconfig, served, time_scale=20.0, learn_estimates=True, env={"POD_NAMESPACE": release}
    ) as operator:
        deadline = time.monotonic() + 180
        phases: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            phases = {
                namespace: (kube.get_json("workflowdags", "two-steps", "-n", namespace).get("status") or {}).get(
                    "phase"
                )
                for namespace in served
            }
            if set(phases.values()) <= {"Succeeded", "Failed"}:
                break
            time.sleep(1)
        log = operator.log(400)
    assert phases == {served[0]: "Succeeded", served[1]: "Succeeded"}, log
    for namespace in served:  # the outputs ConfigMap too is within the Roles' rights
        assert kube.get_json("configmap", "two-steps-outputs", "-n", namespace)["data"] == {"first": "hello"}
    untouched = kube.get_json("workflowdags", "two-steps", "-n", other)
    assert "status" not in untouched, "a namespace the operator does not serve is none of its business"
    assert kube.get_json("pods", "-n", other)["items"] == []
    assert "Forbidden" not in log and " 403" not in log, "the chart's Roles must cover everything the operator does"
    # the learned run times, written (at the latest as the operator stopped) where the chart's Role lets it
    learned = kube.get_json("configmap", CONFIG_MAP_NAME, "-n", release)["data"][DATA_KEY]
    assert '"tool_call"' in learned, learned
