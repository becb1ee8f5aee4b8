"""manifests/samples/ is what operator/dev/samples.py generates: one valid WorkflowDAG per simulator shape."""

from __future__ import annotations

import yaml
from scale_scheduler.operator.dev.samples import SAMPLES_DIR, render, sample_manifests
from scale_scheduler.simulator.generators import SHAPES
from scale_scheduler.simulator.manifests import workflow_from_manifest
from scale_scheduler.simulator.workflow import validate


def test_committed_samples_are_current() -> None:
    for file_name, manifest in sample_manifests().items():
        path = SAMPLES_DIR / file_name
        assert path.is_file(), f"{path} missing: run python -m scale_scheduler.operator.dev.samples"
        assert path.read_text() == render(manifest, file_name.removesuffix(".yaml")), (
            f"{path} is stale: run python -m scale_scheduler.operator.dev.samples"
        )


def test_one_valid_sample_per_shape() -> None:
    shapes = set()
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        workflow = validate(workflow_from_manifest(yaml.safe_load(path.read_text())))
        shapes.add(workflow.shape)
    assert shapes == set(SHAPES)
