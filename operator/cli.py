"""The ``scale-sched`` command: one entry point, each area registering its own sub-commands.

This lives in operator/ because it is the one layer allowed to import all the others.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="scale-sched",
    help="SCALE: a deep-RL Kubernetes scheduler for agentic LLM workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each register() adds commands; heavy imports (torch, kubernetes) happen inside the commands.
    from scale_scheduler.policy.registry import make_scheduler
    from scale_scheduler.simulator import cli as simulator_cli

    # Learned policies too (torch is imported only when one is asked for).
    simulator_cli.register(app, make_scheduler=make_scheduler)
    from scale_scheduler.policy import cli as policy_cli

    policy_cli.register(app)
    from scale_scheduler.operator.dev.localcluster import cli as cluster_cli

    cluster_cli.register(app)
    from scale_scheduler.operator.serve import run as run_cli

    run_cli.register(app)
    from scale_scheduler.operator.dev import demo

    demo.register(app)


def main() -> None:
    _register()
    app()
