"""The loss terms D and G minimise, and which of them a config switches on.

Each module here is a family of terms, and declares itself: `BLOCKS` ({config path: options
dataclass}, the fields with defaults, bounds and docs: `gan_jax/options.py`), `TERMS` (its
`core.Term`s), the heads on D its terms read (`HEADS`, `core.Head`s) and, where the bounds
cannot say it all, `check(config)`. A term is on where its
block is present; the step builds the union of the batches the enabled terms read, judges them
in one pass of D, and sums the terms times their weights, which enter the compiled step as
values: runs that differ only in weights share one program. Adding a regulariser: a function
and its declaration in a family module (a new module is found by itself), and a test on a
hand-computed case. The config blocks (`configs/base.py`'s `block`), the checks, the table
in docs/configs.md and the test registry come from the declarations.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, Callable, NamedTuple

import ml_collections

from gan_jax import options
from gan_jax.terms.core import BATCHES, Head, Term

# Modules here that declare no terms.
_PARTS = ("core",)
FAMILIES = tuple(importlib.import_module(f"{__name__}.{m.name}") for m in sorted(
    pkgutil.iter_modules(__path__), key=lambda m: m.name) if m.name not in _PARTS)
# {config path: options dataclass} of every family, and every term, D's and G's in the order they are summed.
BLOCKS = {path: declaration for family in FAMILIES for path, declaration in family.BLOCKS.items()}
TERMS = tuple(term for family in FAMILIES for term in family.TERMS)
HEADS = tuple(head for family in FAMILIES for head in getattr(family, "HEADS", ()))
DISCRIMINATOR = tuple(t for t in TERMS if t.player == "d")
GENERATOR = tuple(t for t in TERMS if t.player == "g")


def block(config: ml_collections.ConfigDict, path: str):
  """`config.<path>` (dotted), or None where a block on the way is absent."""
  node = config
  for name in path.split("."):
    node = node.get(name) if node is not None else None
  return node


def block_config(path: str, **changes) -> ml_collections.ConfigDict:
  """The config block at `path` ("contrastive", "infogan.neighbours", ...) at its declared
  defaults, with `changes`."""
  if path not in BLOCKS:
    raise ValueError(f"{path!r} is not a term block; allowed: {', '.join(BLOCKS)}")
  return options.defaults(BLOCKS[path], **changes)


class Enabled(NamedTuple):
  """The terms a config switches on, each with its loss function bound to its options."""
  discriminator: tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...]
  generator: tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...]

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(name for name, _, _ in self.discriminator + self.generator)


def _on(term: Term, config) -> bool:
  node = block(config, term.block)
  return (node is not None and (term.requires is None or bool(node[term.requires]))
          and (term.unless is None or block(config, term.unless) is None))


def _options(term: Term, config) -> dict[str, Any]:
  node = block(config, term.block)
  return {**term.constants, **{name: node[name] for name in term.options}}


def _weight(term: Term, config) -> float:
  weight = block(config, term.block)[term.weight] if isinstance(term.weight, str) else term.weight
  return float(term.weight_scale * weight)


def enabled(config: ml_collections.ConfigDict) -> Enabled:
  """(name, loss(judged) -> (loss, metrics), inputs) of each term `config` switches on."""
  bind = lambda terms: tuple((t.name, functools.partial(t.loss, **_options(t, config)), t.inputs)
                             for t in terms if _on(t, config))
  return Enabled(bind(DISCRIMINATOR), bind(GENERATOR))


def weights(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{term name: weight} of the terms `config` switches on."""
  return {t.name: _weight(t, config) for t in TERMS if _on(t, config)}


def _built(head: Head, config) -> bool:
  node = block(config, head.block)
  return node is not None and (not head.requires or any(node[name] for name in head.requires))


def heads(config: ml_collections.ConfigDict) -> tuple[tuple[Callable[..., Any], tuple[tuple[str, Any], ...]], ...]:
  """(build, options) of each head on D that `config`'s blocks ask for (`models.Discriminator`)."""
  return tuple((h.build, tuple((name, block(config, h.block)[name]) for name in h.options))
               for h in HEADS if _built(h, config))


def logit_outputs(config: ml_collections.ConfigDict) -> int:
  """The width of D's real/fake layer: 1, or what a head's block sets (the K+1 classifier's K)."""
  return max([block(config, h.block)[h.outputs] for h in HEADS if h.outputs and _built(h, config)] + [1])


def inputs(terms, order: tuple[str, ...] = BATCHES) -> tuple[str, ...]:
  """The batches the `(name, loss, inputs)` terms read, in `order`."""
  needed = {name for _, _, names in terms for name in names}
  return tuple(name for name in order if name in needed)


def objective(config: ml_collections.ConfigDict, weights_: dict[str, float] | None = None) -> list[str]:
  """What each player minimises, a line each: the weighted sum of its enabled terms and the
  batches each reads, e.g. "D minimises 1.0 d_adversarial(real, fake) + 1.0 d_contrastive(view0, view1)"."""
  weights_ = weights(config) if weights_ is None else weights_
  # A switch that changes what a term differentiates is named beside its inputs: "(real, fake; detach)".
  switches = lambda t: "".join(f"; {name}" for name in t.options if block(config, t.block)[name] is True)
  lines = []
  for player, terms in (("D", DISCRIMINATOR), ("G", GENERATOR)):
    parts = [f"{float(weights_[t.name])} {t.name}({', '.join(t.inputs)}{switches(t)})" for t in terms
             if _on(t, config)]
    lines.append(f"{player} minimises " + (" + ".join(parts) or "nothing"))
  return lines


def _nested(path: str) -> tuple[str, ...]:
  """The names of the blocks that may sit directly inside block `path`."""
  return tuple(sorted({p[len(path) + 1:] for p in BLOCKS if p.startswith(path + ".")
                       and "." not in p[len(path) + 1:]}))


def complete(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with each present term block's missing declared fields at their defaults: a
  config a run saved before a field was declared reads as that run trained (every new field's
  default is the behaviour before it)."""
  for path, declaration in BLOCKS.items():
    if (node := block(config, path)) is not None:
      for f in options.fields(declaration):
        if f.name not in node:
          node[f.name] = f.default
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of a term block that is unknown, missing or
  holds a value training cannot use."""
  for path, declaration in BLOCKS.items():
    if (node := block(config, path)) is not None:
      options.check(declaration, node, path, _nested(path))
  for family in FAMILIES:
    if hasattr(family, "check"):
      family.check(config)


def docs_tables() -> str:
  """docs/configs.md's section on the term blocks, from the declarations
  (`tools/write_config_docs.py` writes it there)."""
  sections, paths = [], {}
  for path, declaration in BLOCKS.items():
    paths.setdefault(declaration, []).append(path)
  for declaration, where in paths.items():
    names = " and ".join(f"`{p}`" for p in where)
    read = [f"`{t.name}`({', '.join(t.inputs)}) x " + (f"`{t.block}.{t.weight}`" if isinstance(t.weight, str)
                                                      else str(t.weight)) + ("" if t.weight_scale == 1 else
                                                                             f" x {t.weight_scale}")
            + (f" (where `{t.block}.{t.requires}` > 0)" if t.requires else "")
            + (f" (off with `{t.unless}`)" if t.unless else "") for t in TERMS if t.block in where]
    terms_line = f"\n\nTerms: {'; '.join(read)}." if read else "\n\nNo loss term."
    sections.append(f"### {names}: `base.block(\"{where[0]}\")`\n\n{declaration.__doc__.strip()}{terms_line}\n\n"
                    + options.markdown(declaration, tuple(where)))
  return "\n\n".join(sections) + "\n"
