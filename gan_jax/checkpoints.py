"""Orbax checkpoints of the train state: save, find the latest, restore into an abstract state.

Orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-save leaves no checkpoint that `latest_step` would pick up. A checkpoint
that cannot be read or written is a `CheckpointError` naming it and what to do; nothing
here deletes a checkpoint to get past one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be written or read; the message names it and what to do."""


def _first_line(e: BaseException | str, limit: int = 160) -> str:
  """The first line of `e`, cut to `limit` characters: TensorStore's first line can be a
  kilobyte of JSON spec, which would bury the advice after it."""
  text = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
  line = text.strip().splitlines()[0] if text.strip() else type(e).__name__
  return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def complete_steps(manager: ocp.CheckpointManager) -> list[int]:
  """Steps whose directory Orbax has finalised (renamed from its temporary name), from disk."""
  directory = str(manager.directory)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _unreadable(manager: ocp.CheckpointManager, step: int, reason: BaseException | str) -> str:
  complete = complete_steps(manager)
  message = (f"the checkpoint {os.path.join(str(manager.directory), str(step))} cannot be read "
             f"({_first_line(reason)})")
  if complete and step != complete[-1]:
    return message  # Not the one a resume loads: there is nothing to advise.
  earlier = [s for s in complete if s < step]
  instead = (f"move it out of {manager.directory} to resume from step {earlier[-1]}" if earlier
             else "move it away to start afresh")
  return f"{message}; to train on, {instead}, or train in a new workdir"


def _write_failed(manager: ocp.CheckpointManager, step: int, e: BaseException) -> str:
  done = [s for s in complete_steps(manager) if s < step]
  return (f"writing the checkpoint of step {step} to {manager.directory} failed ({_first_line(e)}); "
          "training stopped rather than run on unsaved; "
          + (f"the last complete checkpoint is step {done[-1]}" if done else "no checkpoint is complete"))


class _Manager(ocp.CheckpointManager):
  """Orbax's manager, except that it never reports steps to JAX's preemption service."""

  writing: int | None = None  # The step of the last save started: the one a failed write was.

  def reached_preemption(self, step: int) -> bool:
    # The training loop reports every step to the service itself (`loop.StopSignals`).
    # Orbax reports the step it saves, also later from the thread that finishes an
    # asynchronous save: that would move the service's count back to an older step, and
    # the sync point it then picks could lie behind the processes, which would never stop.
    del step
    return False


def make_manager(workdir: str, *, keep: int, asynchronous: bool = True,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """A manager for `workdir/checkpoints` that keeps the newest `keep` steps.

  `read_only` (evaluation): creates, deletes and cleans up nothing, so it can run beside
  a training run that is writing a checkpoint.
  """
  return _Manager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      item_handlers=ocp.StandardCheckpointHandler(),  # So that a fresh manager reads metadata too.
      options=ocp.CheckpointManagerOptions(
          max_to_keep=None if read_only else keep, save_interval_steps=0 if read_only else 1,
          create=not read_only, enable_async_checkpointing=asynchronous,
          cleanup_tmp_directories=not read_only, read_only=read_only))


class _QuietReadOnly(logging.Filter):
  """Drops Orbax's warning that a read-only manager is read only: every `eval.py`, `load_run`
  and notebook restore asks for one on purpose."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only=")


logging.getLogger("absl").addFilter(_QuietReadOnly())


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  """Starts saving `state` at `step` (asynchronously; the device copy is taken before returning).

  Raises CheckpointError, naming the step, if the previous save failed (Orbax would say
  so here) or if this one cannot start.
  """
  wait(manager)
  manager.writing = step
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
  except Exception as e:  # Orbax and TensorStore raise many types for a failed write.
    raise CheckpointError(_write_failed(manager, step, e)) from e


def wait(manager: ocp.CheckpointManager) -> None:
  """Waits until the checkpoint being written is complete; CheckpointError if it failed."""
  try:
    manager.wait_until_finished()
  except Exception as e:
    raise CheckpointError(_write_failed(manager, manager.writing, e)) from e


def check(manager: ocp.CheckpointManager) -> None:
  """CheckpointError if the last checkpoint write has ended and failed; never waits for one
  still running. (Orbax hands a failure to whoever waits first, so this waits once done.)"""
  if jax.process_count() > 1:  # Waiting is not for one process alone to decide there.
    try:
      manager.check_for_errors()
    except Exception as e:
      raise CheckpointError(_write_failed(manager, manager.writing, e)) from e
  elif manager.writing is not None and not manager.is_saving_in_progress():
    wait(manager)


def saved_shapes(manager: ocp.CheckpointManager, step: int) -> dict[str, tuple[tuple[int, ...], str]]:
  """`{leaf path: (shape, dtype name)}` of the train state saved at `step`, from its
  metadata (no array is read). CheckpointError if the checkpoint cannot be read."""
  step_dir = os.path.join(str(manager.directory), str(step))
  if os.path.isdir(step_dir) and not os.listdir(step_dir):
    raise CheckpointError(_unreadable(manager, step, "the directory is empty"))
  try:
    with _quiet_closed_loop():
      metadata = manager.item_metadata(step)
    leaves = jax.tree_util.tree_leaves_with_path(getattr(metadata, "tree", None) or {})
  except Exception as e:
    raise CheckpointError(_unreadable(manager, step, e)) from e
  if not leaves:
    raise CheckpointError(_unreadable(manager, step, "it holds no train state"))
  return {jax.tree_util.keystr(path, simple=True, separator="/"): (tuple(x.shape), np.dtype(x.dtype).name)
          for path, x in leaves}


def _without_member_axis(abstract_state):
  """`abstract_state` of a population of one without its member axis: the state a single run
  saved before single runs had one (up to 282e9fe); None for a larger population."""
  if any(x.shape[:1] != (1,) for x in jax.tree.leaves(abstract_state)):
    return None
  alone = lambda x: x.sharding and jax.sharding.NamedSharding(x.sharding.mesh, jax.sharding.PartitionSpec())
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=alone(x)), abstract_state)


def _is_unstacked(saved: dict[str, tuple[tuple[int, ...], str]], abstract_state) -> bool:
  single = _without_member_axis(abstract_state)
  return single is not None and not _differences(saved, single)


def shape_differences(saved: dict[str, tuple[tuple[int, ...], str]], abstract_state) -> list[str]:
  """What keeps `saved` (from `saved_shapes`) from restoring into `abstract_state`, one
  item per leaf: missing on either side, or another shape or dtype. Empty if it fits, as a
  single run's checkpoint without the member axis fits a population of one (`restore`); for
  such a checkpoint, what differs from the state without the axis, not every array."""
  differences = _differences(saved, abstract_state)
  single = _without_member_axis(abstract_state) if differences else None
  return differences if single is None else min(differences, _differences(saved, single), key=len)


def _differences(saved, abstract_state) -> list[str]:
  here = {jax.tree_util.keystr(path, simple=True, separator="/"): (tuple(x.shape), np.dtype(x.dtype).name)
          for path, x in jax.tree_util.tree_leaves_with_path(abstract_state)}
  differences = [f"{k} is not in the checkpoint" for k in here if k not in saved]
  differences += [f"{k} is only in the checkpoint" for k in saved if k not in here]
  differences += [f"{k} is {saved[k][1]}{list(saved[k][0])} in the checkpoint, {here[k][1]}{list(here[k][0])} here"
                  for k in here if k in saved and saved[k] != here[k]]
  return sorted(differences, key=lambda d: "opt_state" in d)  # A parameter says it best.


def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Restores the checkpoint at `step` (default: latest) into the structure, dtypes and
  shardings of `abstract_state` (a pytree of `jax.ShapeDtypeStruct`, e.g. from `jax.eval_shape`).
  CheckpointError if its files cannot be read."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  try:
    if _is_unstacked(saved_shapes(manager, step), abstract_state):
      with _quiet_closed_loop():
        state = manager.restore(step, args=ocp.args.StandardRestore(_without_member_axis(abstract_state)))
      return jax.jit(lambda tree: jax.tree.map(lambda x: x[None], tree),
                     out_shardings=jax.tree.map(lambda x: x.sharding, abstract_state))(state)
    with _quiet_closed_loop():
      return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except CheckpointError:
    raise
  except Exception as e:  # TensorStore says a corrupted file in many ways.
    raise CheckpointError(_unreadable(manager, step, e)) from e


@contextlib.contextmanager
def _quiet_closed_loop():
  """Drops the "Event loop is closed" errors of a failed read. When one read fails, Orbax
  closes its event loop while TensorStore's other reads are in flight; each then calls back
  into the closed loop, and Python would print a traceback per array around the one-line
  error. On an error the quiet hook stays, as those calls come after it, up to the exit."""
  previous_hook = sys.unraisablehook

  def hook(unraisable):
    if not (unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed"):
      previous_hook(unraisable)
  sys.unraisablehook = hook
  yield
  sys.unraisablehook = previous_hook


def abstract_like(state_shapes, sharding: jax.sharding.Sharding):
  """`jax.ShapeDtypeStruct`s of `state_shapes` with `sharding` on every leaf."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)
