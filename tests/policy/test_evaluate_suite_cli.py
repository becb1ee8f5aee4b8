"""`scale-sched evaluate --suite` and `--optimality` through the public CLI, as a researcher runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scale_scheduler.operator.dev.operator_process import SCALE_SCHED


def _evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALE_SCHED, "evaluate", *args], capture_output=True, text=True, timeout=600, check=False)


def _message(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join(done.stderr.replace("│", " ").split())  # unwrapped from rich's error box


def test_suite_writes_table_plot_and_json_with_bounds_and_rule(tmp_path: Path) -> None:
    done = _evaluate(
        "--suite",
        "all-gpu,lattice",
        "--size",
        "tiny",
        "--seeds",
        "2",
        "--methods",
        "heft,least-loaded,srpt-eft,rollout-heft",
        "--rule",
        "node-queues",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout.strip().splitlines()[-1])
    assert document["config"]["rule"] == "node-queues"
    rows = document["suite"]["rows"]
    assert {(r["scenario"], r["method"]) for r in rows} == {
        (s, m) for s in ("all-gpu", "lattice") for m in ("heft", "least-loaded", "srpt-eft", "rollout-heft")
    }
    # rollout-heft is a reference, not one of the heuristics the ratio is taken against
    assert {r["best_heuristic"] for r in rows} <= {"heft", "least-loaded", "srpt-eft"}
    assert all(r["lower_bound"] > 0 and r["ratio_to_lower_bound"] >= 1.0 for r in rows)
    assert {p.name for p in tmp_path.iterdir()} == {"suite.json", "suite.md", "suite_ratios.png"}
    assert "| all-gpu |" in (tmp_path / "suite.md").read_text()


def test_unknown_suite_scenario_size_or_method_is_refused_naming_the_valid_ones(tmp_path: Path) -> None:
    for args, expected in [
        (("--suite", "all-gpu,nope"), "unknown scenario 'nope'; choose from all-gpu"),
        (("--suite", "ood", "--size", "huge"), "unknown scenario size 'huge'"),
        (("--suite", "all-gpu", "--methods", "heft,fastest"), "unknown scheduler 'fastest'"),
    ]:
        done = _evaluate(*args, "--out", str(tmp_path / "out"))
        assert done.returncode == 2 and expected in _message(done), done.stderr
    assert not (tmp_path / "out").exists(), "nothing is written for a refused command"


def test_standard_table_has_the_bound_and_optimality_reports_cp_sat_gaps(tmp_path: Path) -> None:
    done = _evaluate(
        "--methods",
        "heft,least-loaded",
        "--nodes",
        "4",
        "--seeds",
        "2",
        "--workflows",
        "4",
        "--pair",
        "heft:least-loaded",
        "--optimality",
        "1",
        "--cp-sat-work",
        "20",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout.strip().splitlines()[-1])
    for row in document["results"]:
        assert 0 < row["lower_bound"] <= row["avg_response_time"] * (1 + 1e-9)
        assert row["ratio_to_lower_bound"] >= 1.0
    optimality = document["optimality"]
    (instance,) = optimality["instances"]
    assert instance["cp_sat_status"] in ("OPTIMAL", "FEASIBLE")
    assert set(optimality["mean_gap_to_cp_sat"]) == {"heft", "least-loaded"}
    assert "max(LB1, LB2)" in (tmp_path / "table.md").read_text()
    assert "heft vs CP-SAT" in (tmp_path / "optimality.md").read_text()


def test_train_takes_the_placement_rule_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *SCALE_SCHED,
            "train",
            "--algo",
            "crossattn",
            "--nodes",
            "4",
            "--workflows",
            "2",
            "--groups",
            "1",
            "--rollouts",
            "2",
            "--eval-interval",
            "1",
            "--steps",
            "40",
            "--rule",
            "node-queues",
            "--out",
            str(tmp_path / "run"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["training"]["train_config"]["rule"] == "node-queues"
    refused = subprocess.run(
        [*SCALE_SCHED, "train", "--rule", "nearest", "--out", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2
    assert "unknown placement rule 'nearest'; choose from late-binding, node-queues" in _message(refused)
    assert not (tmp_path / "nope").exists()


def test_guard_reports_how_often_it_replaced_each_policys_choice(tmp_path: Path) -> None:
    done = _evaluate(
        "--suite",
        "all-gpu",
        "--size",
        "tiny",
        "--seeds",
        "1",
        "--policies",
        "heft,least-loaded",
        "--guard",
        "2",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["method"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])["suite"]["rows"]}
    assert rows["heft"]["guarded_fraction"] == 0.0  # earliest finish is never far behind the earliest finish
    assert 0.0 < rows["least-loaded"]["guarded_fraction"] <= 1.0  # least-loaded ignores speed: it gets caught
    assert "Decisions the guard replaced" in (tmp_path / "suite.md").read_text()
    refused = _evaluate("--suite", "all-gpu", "--size", "tiny", "--guard", "1", "--out", str(tmp_path / "no"))
    assert refused.returncode == 2 and "give a factor above 1" in _message(refused)
