"""Old option names kept for one release: hidden from --help, still accepted, with a note on stderr.

Every command spells one idea one way (``--policy``/``--policies``); scripts written against the old
spellings keep working until the next release.
"""

from __future__ import annotations

from typing import Any, TypeVar

import typer

T = TypeVar("T")


def old_name(old: str, new: str) -> Any:
    """A hidden option ``old`` that stands for ``new`` (its value is resolved by ``resolve``)."""
    return typer.Option(None, old, hidden=True, help=f"old name of {new}")


def resolve(new_value: T, old_value: T | None, new: str, old: str, default: T | None = None) -> T:
    """The value given under the new name or, with a deprecation note, the old one; both differently: refused."""
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise typer.BadParameter(f"{old} is the old name of {new}: give one of them", param_hint=new)
    typer.echo(f"note: {old} is now {new}; the old name goes away in the next release", err=True)
    return old_value
