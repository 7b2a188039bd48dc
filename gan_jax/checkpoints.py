"""Orbax checkpoints of the train state: save, find the latest, restore into an abstract state.

Orbax writes each step to a temporary directory and renames it when complete, so a
run killed mid-save leaves no checkpoint that `latest_step` would pick up.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class _Manager(ocp.CheckpointManager):
  """Orbax's manager, except that it never reports steps to JAX's preemption service."""

  def reached_preemption(self, step: int) -> bool:
    # The training loop reports every step to the service itself (`training.StopSignals`).
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
      options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=not read_only, enable_async_checkpointing=asynchronous,
          cleanup_tmp_directories=not read_only, read_only=read_only))


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  """Starts saving `state` at `step` (asynchronously; the device copy is taken before returning)."""
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Restores the checkpoint at `step` (default: latest) into the structure, dtypes and
  shardings of `abstract_state` (a pytree of `jax.ShapeDtypeStruct`, e.g. from `jax.eval_shape`)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def abstract_like(state_shapes, sharding: jax.sharding.Sharding):
  """`jax.ShapeDtypeStruct`s of `state_shapes` with `sharding` on every leaf."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes)
