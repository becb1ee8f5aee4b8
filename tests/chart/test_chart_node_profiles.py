"""The chart's nodeProfiles value: a ConfigMap the operator reads at start through --node-profiles."""

from __future__ import annotations

from pathlib import Path

import yaml
from scale_scheduler.simulator.node_classes import NodeMapping

from .helmtools import by_kind, template

MAPPING = {
    "profiles": [
        {
            "node_class": "mi300x",
            "accelerator": "mi300x",
            "cpu_millicores": 192000,
            "memory_bytes": 2 * 1024**4,
            "gpus": 8,
            "speed": {"llm_generate": 2.5, "llm_embed": 12.0, "retrieve": 1.2, "tool_call": 1.0, "code_exec": 1.2},
            "prefill_tokens_per_second": 15000.0,
            "decode_tokens_per_second": 150.0,
            "bandwidth_gbps": 100.0,
        }
    ],
    "rules": [{"node_class": "mi300x", "labels": {"amd.com/gpu.product-name": "AMD_Instinct_MI300X.*"}}],
}


def test_no_node_profiles_renders_no_configmap_and_no_flag() -> None:
    docs = template()
    assert by_kind(docs, "ConfigMap") == []
    (deployment,) = by_kind(docs, "Deployment")
    assert not any(
        arg.startswith("--node-profiles") for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_node_profiles_reach_the_operator_as_a_mounted_file_it_accepts(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"nodeProfiles": MAPPING}))
    docs = template(extra=("-f", str(values)))
    (config_map,) = by_kind(docs, "ConfigMap")
    # what the operator will read parses and keeps the entries
    mapping = NodeMapping.from_yaml(config_map["data"]["node-profiles.yaml"])
    assert [p.node_class for p in mapping.profiles] == ["mi300x"] and mapping.rules[0].node_class == "mi300x"
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    (flag,) = [arg for arg in container["args"] if arg.startswith("--node-profiles=")]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "node-profiles"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "node-profiles"]
    assert flag == f"--node-profiles={mount['mountPath']}/node-profiles.yaml"
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert "checksum/node-profiles" in deployment["spec"]["template"]["metadata"]["annotations"]
