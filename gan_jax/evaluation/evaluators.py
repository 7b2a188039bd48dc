"""One interface for every evaluator, and the registry that builds them from `config.evals`.

An evaluator is a module of this package that declares itself:
  Options          its options, a frozen dataclass (`options.field`: default, one-line doc, what
                   it allows); `config.evals.<name>` is its block (`block(name)` in configs/base.py)
  check(settings)  (optional) what the bounds cannot say; a ValueError naming the field
  Evaluator        `Evaluator(settings, context)`; `run(state)` yields `(key, value)` pairs of a
                   train state, and `write_plots(directory, step)` (optional) draws the last run
`from_config(config.evals, context)` builds each block's evaluator, the module found by the
block's name (`config.evals.representation` -> `gan_jax.evaluation.representation`), as
big_vision's `evaluators/common.py` does. `run(evaluators, state)` is the one stream both users
read, each key as `<name>/<key>` ("representation/gan_discriminator/kmeans_acc"): training logs
its numbers to TensorBoard (`numbers`), eval.py writes all of it to metrics.json and prints its
tables from it (`report`). No key is renamed on the way.

Adding an evaluator: its module here and its block in configs/base.py's `config.evals`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator, NamedTuple

import ml_collections
import numpy as np

from gan_jax import data
from gan_jax import options


class Context(NamedTuple):
  """What the evaluators of one run are built from (of a population: of its members of one seed,
  which share the random control). The training code makes it (`runs.make_evaluators`)."""
  config: ml_collections.ConfigDict  # The run's; a member's is that of the single run with its seed.
  discriminator: Any                 # D's linen module.
  initial_discriminator: Any         # D's variables at initialisation: the random control.
  # Batch size -> (train state -> `sample_batch(key)`, images in [-1, 1]) of the EMA generator.
  make_generate_fn: Callable[[int], Callable[[dict[str, Any]], Callable[[Any], Any]]]
  train: data.ImageDataset | None = None  # The training split, where already loaded.
  num_labels: int = 0                # Labels a K+1 discriminator trained on.
  validation: bool = False           # Fit on 80% of the training split, score on the rest; no test split.
  plots: bool = False                # Keep what `write_plots` draws (eval.py).


def module(name: str):
  """The module of evaluator `name` (`gan_jax.evaluation.<name>`); ValueError if there is none."""
  path = f"{__package__}.{name}"
  try:
    found = importlib.import_module(path)
  except ModuleNotFoundError as e:
    if e.name != path:
      raise
    found = None
  if found is None or not hasattr(found, "Options") or not hasattr(found, "Evaluator"):
    raise ValueError(f"config.evals.{name}: no evaluator {path} (a module declaring Options and Evaluator)")
  return found


def block(name: str, **changes) -> ml_collections.ConfigDict:
  """The block `config.evals.<name>` at the defaults its module declares, with `changes`."""
  return options.defaults(module(name).Options, **changes)


def check(name: str, settings: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first unknown, missing or unusable field of `config.evals.<name>`."""
  found = module(name)
  options.check(found.Options, settings, f"evals.{name}")
  if hasattr(found, "check"):
    found.check(settings)


def settings(evals: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """A checked copy of `config.evals.<name>`."""
  copy = ml_collections.ConfigDict(dict(evals[name]))
  check(name, copy)
  return copy


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first unusable block or field of `config.evals`."""
  for name in config.evals:
    settings(config.evals, name)


def from_config(evals: ml_collections.ConfigDict, context: Context) -> dict[str, Any]:
  """{name: evaluator} of every block of `evals` (`config.evals`), in the order of their names."""
  return {name: module(name).Evaluator(settings(evals, name), context) for name in evals}


def run(evaluators: dict[str, Any], state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
  """Every evaluator's `(key, value)` pairs of one train state, each key as `<name>/<key>`."""
  for name, evaluator in evaluators.items():
    for key, value in evaluator.run(state):
      yield f"{name}/{key}", value


def numbers(pairs) -> dict[str, float]:
  """The pairs whose value is a number, the ones TensorBoard shows (lists, strings and the
  protocols go to metrics.json only)."""
  return {key: value for key, value in pairs
          if np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number)}
