"""The one place that knows about devices: the mesh and the shardings of state and batches.

Data parallelism is `jax.jit` over a one-axis mesh named "data": the batch is split
along it, parameters and optimizer state are replicated, and XLA inserts the gradient
all-reduce. (`jax.pmap` is in maintenance mode since JAX 0.8 and is not used.) A
population (`population.py`) adds a "member" axis before it: the members' states and
batches are split along it, and members on different devices never communicate.

Multi-host: every process runs the same program on a mesh of all processes' devices
(`initialize_distributed` first). Host data enters as a global array through
`host_to_global`, never a plain `device_put`, which would be process-local.
"""

from __future__ import annotations

import math
import os

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
MEMBER_AXIS = "member"


def make_mesh(members: int = 1) -> jax.sharding.Mesh:
  """A mesh over every device of every process: 1-D ("data") for one member; for a population
  of `members`, 2-D ("member", "data"), the member axis as long as the largest number of
  devices that divides both the device count and `members`, the data axis the rest.

  Auto axis types: the batch constraint in the step is all XLA needs to partition the
  rest (explicit sharding-in-types would demand an output sharding on every op).
  """
  if members == 1:
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
  on_members = math.gcd(members, jax.device_count())
  return jax.make_mesh((on_members, jax.device_count() // on_members), (MEMBER_AXIS, DATA_AXIS),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def by_member(mesh: jax.sharding.Mesh, axis: int = 0) -> NamedSharding:
  """How the train state and what else has a member axis (at `axis`) are placed: replicated
  for one member; for a population, each member's part on its place of the member axis."""
  return NamedSharding(mesh, P(*([None] * axis), MEMBER_AXIS) if MEMBER_AXIS in mesh.axis_names else P())


def batch_sharded(mesh: jax.sharding.Mesh, batch_axis: int = 0) -> NamedSharding:
  """Splits axis `batch_axis` of an array over the data axis."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    on = f" of the data axis (the members take {mesh.shape[MEMBER_AXIS]})" if MEMBER_AXIS in mesh.axis_names else ""
    raise ValueError(f"config.batch_size={batch_size} must be divisible by the {n} devices{on}; "
                     f"allowed: a multiple of {n}")


def process_share(mesh: jax.sharding.Mesh) -> tuple[int, int, int]:
  """`(position, num_processes, local_devices)`: where this process's part of an array
  split along the data axis sits among the processes' parts, in the order the mesh
  lays out their devices, and how many devices hold it.
  """
  processes = [d.process_index for d in mesh.devices.flat]
  order = list(dict.fromkeys(processes))
  counts = {p: processes.count(p) for p in order}
  if len(set(counts.values())) > 1:  # Equal shares need equal device counts.
    raise ValueError(f"every process must have the same number of devices; the mesh has {counts}")
  return order.index(jax.process_index()), len(order), counts[jax.process_index()]


def host_to_global(x, sharding: NamedSharding) -> jax.Array:
  """A global array from this process's part of it: for a replicated sharding, the whole."""
  return jax.make_array_from_process_local_data(sharding, x)


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process JAX cluster; call before any other JAX call.

  On Cloud TPU, SLURM and Open MPI every argument is detected; elsewhere pass all three
  (or set JAX_COORDINATOR_ADDRESS and pass the other two). On CPU the processes exchange
  data over gloo, which is how the tests run two processes on one machine.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # Only the CPU backend reads it.
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def hide_accelerators_from_tensorflow() -> None:
  """TensorFlow only reads data and writes summaries: it must never take GPU memory from JAX."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; an earlier call hid them.
    pass
