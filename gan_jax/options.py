"""Options declared once: a block of config fields as a frozen dataclass, each field with its
default, what it allows and a one-line doc. The config block, its checks and its table in
docs/configs.md are made from the declaration.

  @dataclasses.dataclass(frozen=True)
  class Contrastive:
    '''SimCLR's NT-Xent on two augmented views of each real image.'''
    weight: float = options.field(1.0, "In D's loss.", ">= 0")
    temperature: float = options.field(0.2, "NT-Xent's temperature.", "> 0")

What a field allows: ">= x", "> x" (x a number), "[a, b]", a tuple of the values allowed,
or None (anything of the default's type).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import ml_collections

_BOUND = re.compile(r"^(?P<op>>=|>) (?P<x>-?[\d.]+)$")
_RANGE = re.compile(r"^\[(?P<a>-?[\d.]+), (?P<b>-?[\d.]+)\]$")


def field(default: Any, doc: str, allowed: str | tuple | None = None):
  """A declared field: `default`, a one-line `doc`, and what it `allowed` (module docstring)."""
  if isinstance(allowed, str) and not (_BOUND.match(allowed) or _RANGE.match(allowed)):
    raise ValueError(f"allowed={allowed!r}: a bound is '>= x', '> x' or '[a, b]'")
  return dataclasses.field(default=default, metadata={"doc": doc, "allowed": allowed})


def fields(declaration) -> tuple[dataclasses.Field, ...]:
  return dataclasses.fields(declaration)


def defaults(declaration, **changes) -> ml_collections.ConfigDict:
  """The config block of `declaration` at its defaults, with `changes` (a one-line
  ValueError names a change that is not one of its fields)."""
  names = [f.name for f in fields(declaration)]
  for name in changes:
    if name not in names:
      raise ValueError(f"{declaration.__name__} has no field {name!r}; allowed: {', '.join(names)}")
  return ml_collections.ConfigDict({f.name: f.default for f in fields(declaration)} | changes)


def allows(allowed, value) -> bool:
  """Whether `value` is one that `allowed` (a field's bound, range or choices) admits."""
  if allowed is None:
    return True
  if isinstance(allowed, tuple):
    return value in allowed
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return False
  if match := _BOUND.match(allowed):
    x = float(match["x"])
    return value >= x if match["op"] == ">=" else value > x
  match = _RANGE.match(allowed)
  return float(match["a"]) <= value <= float(match["b"])


def describe(allowed) -> str:
  """What a field allows, as an error message ends."""
  if isinstance(allowed, tuple):
    return "; allowed: " + ", ".join(map(str, allowed))
  if allowed == "> 0":
    return " must be positive"
  return f" must be {'in ' if allowed.startswith('[') else ''}{allowed}"


def check(declaration, node, path: str, nested: tuple[str, ...] = ()) -> None:
  """Raises ValueError naming the first field of block `config.<path>` (`node`) that is
  unknown, missing or not allowed; `nested` are the blocks that may sit inside it."""
  names = tuple(f.name for f in fields(declaration))
  if not hasattr(node, "keys"):
    raise ValueError(f"config.{path}={node!r} must be a block with fields {', '.join(names)} (gan_jax/options.py)")
  for name in node.keys():
    if name not in names + nested:
      raise ValueError(f"config.{path}.{name} is not a field; allowed: {', '.join(names + tuple(sorted(nested)))}")
  for f in fields(declaration):
    if f.name not in node:
      raise ValueError(f"config.{path} lacks its field {f.name!r} (its declaration: {declaration.__name__})")
    if not allows(f.metadata["allowed"], node[f.name]):
      raise ValueError(f"config.{path}.{f.name}={node[f.name]!r}{describe(f.metadata['allowed'])}")


def markdown(declaration, paths: tuple[str, ...]) -> str:
  """The table of `declaration`'s fields for docs/configs.md, at each of `paths`."""
  if not fields(declaration):
    return "No fields: the block's presence switches it on."
  rows = ["| field | default | allowed | meaning |", "|---|---|---|---|"]
  for f in fields(declaration):
    allowed = f.metadata["allowed"]
    allowed = "any" if allowed is None else ", ".join(map(repr, allowed)) if isinstance(allowed, tuple) else allowed
    names = ", ".join(f"`{path}.{f.name}`" for path in paths)
    doc = f.metadata["doc"].replace("|", "\\|")
    rows.append(f"| {names} | `{f.default!r}` | {allowed} | {doc} |")
  return "\n".join(rows)
