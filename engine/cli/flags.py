"""Command-line flags made from the config dataclasses' fields, and a config written back as flags.

Each field made with ``engine.config.setting`` is a flag: ``--batch-size`` for ``batch_size`` (or the field's
``flag``), typed from its annotation (a tuple takes several values, a bool that defaults to True is ``--no-<name>``),
with its help, choices and default. A flag not given parses to None, so the config's own default holds: a new
field is a new flag with no argparse line written for it. No torch here: the app writes its trainer's command
line with ``config_arguments``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from engine.config import range_text


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of config dataclass ``cls`` that are flags (made with engine.config.setting)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag_name(f: dataclasses.Field) -> str:
    if "flag" in f.metadata:
        return f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def _type(cls: type, f: dataclasses.Field) -> Any:
    """The field's type; ``X | None`` is X (the flag, when given, has a value)."""
    kind = typing.get_type_hints(cls)[f.name]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    return kind


def add_flags(
    parser: argparse._ActionsContainer, cls: type, into: dict[str, argparse._ActionsContainer] | None = None
) -> None:
    """A flag for each field of ``cls`` that has a help (``into`` names another container for some fields, such as
    a mutually exclusive group); its parsed value is None when the flag is not given."""
    for f in flag_fields(cls):
        container = (into or {}).get(f.name, parser)
        kind, default, help_text = _type(cls, f), f.default, f.metadata["help"]
        if kind is bool:
            if default:
                help_text = f"off: {help_text}"
            container.add_argument(
                flag_name(f), dest=f.name, action="store_const", const=not default, default=None, help=help_text
            )
            continue
        metavar = flag_name(f).lstrip("-").replace("-", "_").upper()
        options: dict[str, Any] = {"dest": f.name, "default": None, "metavar": metavar}
        if typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            options["type"] = args[0]
            options["nargs"] = "+" if args[-1] is Ellipsis else len(args)
            shown = " ".join(str(v) for v in default)
        else:
            options["type"] = kind
            shown = str(default)
        if "choices" in f.metadata:
            options["choices"] = f.metadata["choices"]
            del options["metavar"]  # argparse shows the choices
        if "range" in f.metadata:
            help_text += f"; {range_text(f.metadata)}"
        if "default" not in help_text:
            help_text += f"; default {shown}"
        container.add_argument(flag_name(f), help=help_text, **options)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The values of the flags of ``cls`` given on the command line, by field name (tuples for several values)."""
    values = {}
    for f in flag_fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return values


def config_arguments(config: Any, base: Any) -> list[str]:
    """The flags that turn ``base`` into ``config`` (same dataclass): one per flag field where they differ."""
    out: list[str] = []
    for f in flag_fields(type(config)):
        value = getattr(config, f.name)
        if value == getattr(base, f.name):
            continue
        if isinstance(value, bool):
            if value == f.default:
                raise ValueError(f"{f.name}={value} cannot be written as a flag: it is the default")
            out.append(flag_name(f))
        elif isinstance(value, tuple):
            out += [flag_name(f), *(repr(v) if isinstance(v, float) else str(v) for v in value)]
        else:
            out += [flag_name(f), repr(value) if isinstance(value, float) else str(value)]
    return out
