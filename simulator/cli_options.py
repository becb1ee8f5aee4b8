"""Option values every command parses the same way, refused with the same message naming the option."""

from __future__ import annotations

import typer

from .guard import check_factor
from .placement import PlacementRule, parse_rule


def rule_option(value: str) -> PlacementRule:
    """``--rule``'s value, or the usage error naming the valid rules."""
    try:
        return parse_rule(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--rule") from None


def guard_option(value: float) -> float:
    """``--guard``'s value, or the usage error saying what a factor must be."""
    try:
        return check_factor(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--guard") from None
