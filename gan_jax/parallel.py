"""The one place that knows about devices: the mesh and the shardings of state and batches.

Data parallelism is `jax.jit` over a one-axis mesh named "data": the batch is split
along it, parameters and optimizer state are replicated, and XLA inserts the gradient
all-reduce. (`jax.pmap` is in maintenance mode since JAX 0.8 and is not used.)
"""

from __future__ import annotations

import os

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device of every process.

  Auto axis types: the batch constraint in the step is all XLA needs to partition the
  rest (explicit sharding-in-types would demand an output sharding on every op).
  """
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh, batch_axis: int = 0) -> NamedSharding:
  """Splits axis `batch_axis` of an array over the data axis."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    raise ValueError(f"config.batch_size={batch_size} must be divisible by the {n} devices")


def hide_accelerators_from_tensorflow() -> None:
  """TensorFlow only reads data and writes summaries: it must never take GPU memory from JAX."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; an earlier call hid them.
    pass
