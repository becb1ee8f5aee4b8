"""The chart without a cluster: lint, schema, what each template renders, manifests/ in sync."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from .helmtools import CHART_DIR, REPO_ROOT, by_kind, helm, operator_roles, template, tool


def test_helm_lint_passes() -> None:
    result = helm("lint", str(CHART_DIR), "--strict", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_typo_fails_with_the_schema_message() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "polcy=heft", check=False)
    assert result.returncode != 0
    assert "additional properties 'polcy' not allowed" in result.stderr


def test_nested_values_typo_fails_too() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "extender.enable=true", check=False)
    assert result.returncode != 0
    assert "additional properties 'enable' not allowed" in result.stderr


def test_unknown_policy_is_rejected_by_the_schema() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "policy=fastest", check=False)
    assert result.returncode != 0
    assert "policy" in result.stderr and "scale" in result.stderr


def test_unknown_placement_rule_is_rejected_by_the_schema() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "placementRule=eager", check=False)
    assert result.returncode != 0
    assert "placementRule" in result.stderr and "late-binding" in result.stderr


def test_several_replicas_without_peering_are_refused() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "replicas=2", check=False)
    assert result.returncode != 0
    assert "needs peering.enabled=true" in result.stderr


def test_default_render_has_the_operator_objects() -> None:
    docs = template()
    kinds = sorted(doc["kind"] for doc in docs)
    # the operator's ClusterRole and the two user roles aggregated into view and edit/admin; the Role on the
    # ConfigMap of learned run times
    assert kinds == ["ClusterRole"] * 3 + [
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]


def test_the_learned_run_times_configmap_is_the_only_one_the_operator_may_read_in_its_namespace() -> None:
    docs = template(namespace="ops")
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "ops"
    named, anonymous = role["rules"]
    assert named["resourceNames"] == ["scale-scheduler-estimates"]
    assert set(named["verbs"]) == {"get", "update", "patch"} and anonymous["verbs"] == ["create"]
    assert "resourceNames" not in anonymous  # RBAC cannot name what does not exist yet
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-learn-estimates" not in args
    off = template("learnEstimates=false")
    assert by_kind(off, "Role") == []
    assert "--no-learn-estimates" in by_kind(off, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_user_roles_aggregate_into_view_and_edit_and_can_be_left_out() -> None:
    roles = {role["metadata"]["name"]: role for role in by_kind(template(), "ClusterRole")}
    view, edit = roles["scale-scheduler-view"], roles["scale-scheduler-edit"]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert set(view["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert "create" in edit["rules"][0]["verbs"] and "workflowdags/status" not in edit["rules"][0]["resources"]
    assert len(by_kind(template("aggregateRoles=false"), "ClusterRole")) == 1


def test_deployment_is_hardened_and_probed() -> None:
    (deployment,) = by_kind(template(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "scale-scheduler"
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_values_reach_the_operator_command_line() -> None:
    (deployment,) = by_kind(
        template(
            "policy=heft",
            "timeScale=20",
            "logLevel=debug",
            "checkpoint=/ckpt/model.pt",
            "extender.enabled=true",
            "placementRule=node-queues",
        ),
        "Deployment",
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["operator", "run"]
    for expected in (
        "--all-namespaces",
        "--policy=heft",
        "--rule=node-queues",
        "--time-scale=20",
        "--log-level=debug",
        "--checkpoint=/ckpt/model.pt",
        "--extender-port=8888",
        "--health-port=8080",
        "--metrics-port=9090",
    ):
        assert expected in args


def test_extender_off_means_port_zero_and_no_extender_service_port() -> None:
    docs = template()
    (deployment,) = by_kind(docs, "Deployment")
    assert "--extender-port=0" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--rule=late-binding" in deployment["spec"]["template"]["spec"]["containers"][0]["args"], "the default"
    (service,) = by_kind(docs, "Service")
    assert [port["name"] for port in service["spec"]["ports"]] == ["metrics"]


def test_single_namespace_mode_watches_the_release_namespace() -> None:
    (deployment,) = by_kind(template("watchAllNamespaces=false", namespace="team-a"), "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--all-namespaces" not in args


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_a_namespace_list_gets_roles_there_and_only_cluster_scoped_rights_cluster_wide() -> None:
    docs = template("watchAllNamespaces=false", "watchNamespaces={team-a,team-b}", namespace="ops")
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [arg for arg in args if "namespace" in arg] == ["--namespace=team-a", "--namespace=team-b"]
    roles = {(role["metadata"]["namespace"], role["metadata"]["name"]): role for role in by_kind(docs, "Role")}
    # the two served namespaces, and the release namespace for the operator's own pod (read, Warning Events)
    assert set(roles) == {
        ("team-a", "scale-scheduler"),
        ("team-b", "scale-scheduler"),
        ("ops", "scale-scheduler-self"),
        ("ops", "scale-scheduler-estimates"),  # the ConfigMap of learned run times, nothing else
    }
    for namespace in ("team-a", "team-b"):
        grants = _grants(roles[(namespace, "scale-scheduler")])
        for needed in [
            ("agentic.scale.dev", "workflowdags", "watch"),
            ("agentic.scale.dev", "workflowdags/status", "patch"),
            ("", "pods", "create"),
            ("", "pods/binding", "create"),
            ("", "pods/status", "patch"),
            ("", "events", "create"),
            ("", "configmaps", "patch"),  # the workflow's outputs, handed to its primitives' children
        ]:
            assert needed in grants
    assert _grants(roles[("ops", "scale-scheduler-self")]) >= {("", "pods", "get"), ("", "events", "create")}
    assert ("", "pods", "create") not in _grants(roles[("ops", "scale-scheduler-self")])
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]): b for b in by_kind(docs, "RoleBinding")}
    assert set(bindings) == set(roles)
    for binding in bindings.values():
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "scale-scheduler", "namespace": "ops"}]
    (cluster_role,) = operator_roles(docs)
    cluster_wide = _grants(cluster_role)
    assert not any(group == "agentic.scale.dev" for group, _, _ in cluster_wide), "WorkflowDAG rights only in Roles"
    assert {verb for group, resource, verb in cluster_wide if resource.startswith("pods")} == {"list"}
    assert ("", "nodes", "watch") in cluster_wide and ("", "namespaces", "watch") in cluster_wide


def test_watching_only_the_release_namespace_puts_its_rights_in_a_role_there() -> None:
    docs = template("watchAllNamespaces=false", namespace="team-a")
    names = {(role["metadata"]["namespace"], role["metadata"]["name"]) for role in by_kind(docs, "Role")}
    # served, so no separate role for the operator's own pod; the learned run times' one stays apart
    assert names == {("team-a", "scale-scheduler"), ("team-a", "scale-scheduler-estimates")}
    (cluster_role,) = operator_roles(docs)
    assert ("", "pods/binding", "create") not in _grants(cluster_role)


def test_a_namespace_list_with_every_namespace_watched_is_refused() -> None:
    result = helm("template", "t", str(CHART_DIR), "--set", "watchNamespaces={team-a}", check=False)
    assert result.returncode != 0
    assert "set watchAllNamespaces=false" in result.stderr


def test_a_namespace_list_entry_that_is_no_namespace_name_is_refused_by_the_schema() -> None:
    result = helm(
        "template",
        "t",
        str(CHART_DIR),
        "--set",
        "watchAllNamespaces=false",
        "--set",
        "watchNamespaces={Team_A}",
        check=False,
    )
    assert result.returncode != 0
    assert "watchNamespaces" in result.stderr and "Team_A" in result.stderr


def test_peering_over_a_namespace_list_has_a_kopf_peering_in_each() -> None:
    docs = template("replicas=2", "peering.enabled=true", "watchAllNamespaces=false", "watchNamespaces={team-a,team-b}")
    assert sorted(peering["metadata"]["namespace"] for peering in by_kind(docs, "KopfPeering")) == ["team-a", "team-b"]
    assert not by_kind(docs, "ClusterKopfPeering")
    role = next(role for role in by_kind(docs, "Role") if role["metadata"]["namespace"] == "team-a")
    assert ("kopf.dev", "kopfpeerings", "patch") in _grants(role)
    (cluster_role,) = operator_roles(docs)
    assert not any(group == "kopf.dev" for group, _, _ in _grants(cluster_role))


def test_cluster_role_has_no_wildcards_and_can_bind_pods() -> None:
    (role,) = operator_roles(template())
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for needed in [
        ("", "pods/binding", "create"),
        ("", "pods", "create"),
        ("", "pods", "watch"),
        ("", "nodes", "watch"),
        ("", "events", "create"),
        ("agentic.scale.dev", "workflowdags", "patch"),
        ("agentic.scale.dev", "workflowdags/status", "patch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]:
        assert needed in grants
    assert not any(group == "kopf.dev" for group, _, _ in grants), "peering rules only when peering is on"


def test_peering_adds_kopf_peering_rules_and_flag() -> None:
    docs = template("replicas=2", "peering.enabled=true")
    (role,) = operator_roles(docs)
    assert any("kopf.dev" in rule["apiGroups"] and "clusterkopfpeerings" in rule["resources"] for rule in role["rules"])
    (deployment,) = by_kind(docs, "Deployment")
    assert "--peering=scale-scheduler" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # the object kopf coordinates through (without it every replica pauses for good), cluster-wide or namespaced
    assert [peering["metadata"]["name"] for peering in by_kind(docs, "ClusterKopfPeering")] == ["scale-scheduler"]
    (namespaced,) = by_kind(template("replicas=2", "peering.enabled=true", "watchAllNamespaces=false"), "KopfPeering")
    assert namespaced["metadata"]["namespace"] == "scale-scheduler"
    assert not by_kind(template(), "ClusterKopfPeering") + by_kind(template(), "KopfPeering")


def test_extender_scheduler_config_points_at_the_service() -> None:
    docs = template("extender.enabled=true", "extender.schedulerConfig.enabled=true")
    (config_map,) = by_kind(docs, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["scheduler-config.yaml"])
    assert config["kind"] == "KubeSchedulerConfiguration"
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == "http://scale-scheduler.scale-scheduler.svc:8888"
    assert extender["nodeCacheCapable"] is True
    assert extender["managedResources"][0]["ignoredByScheduler"] is True
    assert config["leaderElection"]["resourceName"] == config["profiles"][0]["schedulerName"]


def test_service_monitor_needs_the_prometheus_operator_api() -> None:
    failed = helm("template", "t", str(CHART_DIR), "--set", "metrics.serviceMonitor.enabled=true", check=False)
    assert failed.returncode != 0 and "monitoring.coreos.com/v1" in failed.stderr
    docs = template("metrics.serviceMonitor.enabled=true", extra=("--api-versions", "monitoring.coreos.com/v1"))
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_schema_is_valid_json_and_closed() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False


def test_manifests_are_in_sync_with_the_chart() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "hack" / "render-manifests.sh"), "--check"],
        capture_output=True,
        text=True,
        env={"HELM": tool("helm"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("release", ["scale-scheduler", "other"])
def test_release_name_is_used_for_cluster_scoped_names(release: str) -> None:
    (role,) = operator_roles(template(release=release))
    expected = "scale-scheduler" if release == "scale-scheduler" else "other-scale-scheduler"
    assert role["metadata"]["name"] == expected


def test_extra_args_env_and_volumes_reach_the_operator_container() -> None:
    (deployment,) = by_kind(
        template(
            "extraArgs[0]=--log-level=debug",
            "extraEnv[0].name=HTTPS_PROXY",
            "extraEnv[0].value=http://proxy:3128",
            "extraVolumes[0].name=ckpt",
            "extraVolumes[0].persistentVolumeClaim.claimName=ckpt",
            "extraVolumeMounts[0].name=ckpt",
            "extraVolumeMounts[0].mountPath=/ckpt",
        ),
        "Deployment",
    )
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][-1] == "--log-level=debug"
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert {"name": "ckpt", "mountPath": "/ckpt"} in container["volumeMounts"]
    assert {"name": "ckpt", "persistentVolumeClaim": {"claimName": "ckpt"}} in pod["volumes"]


def test_a_pod_disruption_budget_only_with_several_replicas() -> None:
    assert by_kind(template(), "PodDisruptionBudget") == []
    (budget,) = by_kind(template("replicas=2", "peering.enabled=true"), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "scale-scheduler"
