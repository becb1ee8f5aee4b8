"""The ``scale-sched`` command: one entry point, each area registering its own sub-commands.

This lives in operator/ because it is the one layer allowed to import all the others.
"""

from __future__ import annotations

from importlib.metadata import version

import typer

app = typer.Typer(
    name="scale-sched",
    help="SCALE: a deep-RL Kubernetes scheduler for agentic LLM workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# --help groups the commands by what they are for
SIMULATION, CLUSTER, OPERATOR = "Simulation and research", "Cluster", "Operator"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"scale-sched {version('scale-scheduler')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """SCALE: a deep-RL Kubernetes scheduler for agentic LLM workflows."""


def _register() -> None:
    # Each register() adds commands; heavy imports (torch, kubernetes) happen inside the commands.
    from scale_scheduler.policy.registry import METHODS, make_scheduler
    from scale_scheduler.simulator import cli as simulator_cli

    # Learned policies too (torch is imported only when one is asked for).
    simulator_cli.register(app, make_scheduler=make_scheduler, methods=METHODS, panel=SIMULATION)
    from scale_scheduler.policy import cli as policy_cli

    policy_cli.register(app, panel=SIMULATION)
    from scale_scheduler.operator.dev.localcluster import cli as cluster_cli

    cluster_cli.register(app, panel=CLUSTER)
    from scale_scheduler.operator.serve import run as run_cli

    run_cli.register(app, panel=OPERATOR)
    from scale_scheduler.operator.serve import calibrate

    calibrate.register(app, panel=OPERATOR)
    from scale_scheduler.operator.dev import demo

    demo.register(app, panel=OPERATOR)


def main() -> None:
    _register()
    app()
