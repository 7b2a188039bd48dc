"""Resuming a run: which config changes a checkpoint accepts, and the one-line error for those it does not."""

from __future__ import annotations

import functools
import json
import operator
import os
from typing import Any

from absl import logging
import jax
import ml_collections

from gan_jax import checkpoints
from gan_jax import population
from gan_jax import runs
from gan_jax import state as state_lib

_ABSENT = "(absent)"


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def config_changes(saved: dict, config: ml_collections.ConfigDict) -> dict[str, tuple[Any, Any]]:
  """`{dotted field: (saved value, value in config)}` for each field where the config a run
  saved (`saved`, as read from its config.json) and `config` differ."""
  old, new = _flatten(saved), _flatten(json.loads(json.dumps(config.to_dict())))
  return {k: (old.get(k, _ABSENT), new.get(k, _ABSENT)) for k in sorted(set(old) | set(new))
          if old.get(k, _ABSENT) != new.get(k, _ABSENT)}


def _by_block(saved: dict, new: dict, changes: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
  """`changes` with the fields of a block that one side lacks (a term switched on or off)
  made one change of the whole block."""
  def get(tree, path):
    for name in path:
      if not isinstance(tree, dict) or name not in tree:
        return _ABSENT
      tree = tree[name]
    return tree
  units = {}
  for key, change in changes.items():
    parts = key.split(".")
    block = next((i for i in range(1, len(parts)) if _ABSENT in (get(saved, parts[:i]), get(new, parts[:i]))), None)
    if block is None:
      units[key] = change
    else:
      units[".".join(parts[:block])] = (get(saved, parts[:block]), get(new, parts[:block]))
  return units


def _fits(saved: dict, saved_shapes, field: str | None = None, value: Any = None,
          num_examples: int = 0) -> bool | None:
  """Whether the saved config (with `field` alone set to `value`, or deleted where it is
  `_ABSENT`) makes a train state that the checkpoint fits; None where that config cannot be built."""
  candidate = ml_collections.ConfigDict(saved)
  try:
    if field is not None:
      *parents, leaf = field.split(".")
      parent = functools.reduce(operator.getitem, parents, candidate)
      if value == _ABSENT:
        del parent[leaf]
      else:
        parent[leaf] = value
    make_state = functools.partial(population.init_state, state_lib.make_gan(candidate), candidate, num_examples)
    shapes = jax.eval_shape(make_state)
  except Exception:  # pylint: disable=broad-except
    return None
  return not checkpoints.shape_differences(saved_shapes, shapes)


def check_resumable(config: ml_collections.ConfigDict, workdir: str, manager, step: int, abstract_state,
                    num_examples: int = 0) -> None:
  """Raises ValueError unless the checkpoint at `step` restores into `abstract_state`
  (the train state `config` makes), naming the config fields that changed its shapes since
  the run saved `workdir/config.json`, or else the first leaf that differs. Fields that
  keep the shapes (total_steps, learning rates, ...) may change: they are logged.
  A checkpoint whose metadata cannot be read is a `checkpoints.CheckpointError`."""
  saved_shapes = checkpoints.saved_shapes(manager, step)
  differences = checkpoints.shape_differences(saved_shapes, abstract_state)
  saved_config = {}
  if os.path.isfile(path := os.path.join(workdir, runs.CONFIG_FILE)):
    with open(path) as f:
      saved_config = json.load(f)
  changes = config_changes(saved_config, config) if saved_config else {}
  if not differences:
    if changes:
      logging.info("Resuming with fields changed since %s: %s.", path,
                   "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    return
  named = []
  # Fields are named only where the saved config itself still makes the checkpoint's state
  # (the code or config.json may have changed since); otherwise the arrays say it.
  if changes and _fits(saved_config, saved_shapes, num_examples=num_examples):
    changes = _by_block(saved_config, json.loads(json.dumps(config.to_dict())), changes)
    named = [k for k, (_, new) in changes.items() if _fits(saved_config, saved_shapes, k, new, num_examples) is False]
  describe = lambda k, old, new: (f"config.{k} (a block the saved config lacks)" if old == _ABSENT else
                                  f"config.{k} (absent; saved: a block)" if new == _ABSENT else
                                  f"config.{k}={new!r} (saved: {old!r})")
  fields = " and ".join(describe(k, *changes[k]) for k in named)
  fields += " changes its shapes (" if len(named) == 1 else " change its shapes ("
  raise ValueError(
      f"{os.path.join(str(manager.directory), str(step))} is a checkpoint of another train state than this config "
      "makes: " + (fields if named else "")
      + f"{len(differences)} arrays differ, e.g. {differences[0]}" + (")" if named else "")
      + "; resume with the saved values, or train in "
      "a new workdir; fields that keep the shapes, like total_steps, may change")
