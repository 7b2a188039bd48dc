r"""Throughput and memory of populations: P members of a config trained as one program.

  python benchmarks/population_throughput.py --members=1,2,4,8
  python benchmarks/population_throughput.py --config=configs/mnist_dcgan.py --members=1,8 --map=vmap

For each P, in a subprocess of its own (so its peak memory is its own): the config with
`population.seeds=P` (P seeds of the full recipe, each with the config's ablations),
`step.make_train_fn` as train.py runs it on a synthetic uint8 training set held on the
devices, a warm-up call (compilation included), then the median steps/s over `--windows`
timed windows. Total images/s = members x batch x n_dis x steps/s; the speed-up is that over
the first P. Memory: the process's peak resident set (CPU) or the device's peak bytes in use
(accelerators). `--map` picks how the members are mapped: `auto` (unrolled on
CPU, vmap elsewhere: `population.map_members`), `vmap` or `unroll`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mnist_dcgan.py", "Training config.")
_MEMBERS = flags.DEFINE_list("members", ["1", "2", "4", "8"], "Population sizes to time.")
_MAP = flags.DEFINE_enum("map", "auto", ["auto", "vmap", "unroll"], "How the members are mapped.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 4000, "Size of the synthetic dataset.")
_WINDOWS = flags.DEFINE_integer("windows", 3, "Timed windows; steps/s is their median.")
_WINDOW_STEPS = flags.DEFINE_integer("window_steps", 8, "Training steps per window (rounded up to whole calls).")
_ONE = flags.DEFINE_integer("one", 0, "Internal: time this population size and print one JSON line.")


def measure(config, members: int) -> dict[str, float]:
  """Steps/s, images/s, compile seconds and peak memory of a population of `members` seeds."""
  import functools
  import jax
  import numpy as np
  from gan_jax import parallel, population, step as step_lib, state as state_lib

  if _MAP.value != "auto":
    population.map_members = functools.partial(population.map_members, unroll=_MAP.value == "unroll")
  config = config.copy_and_resolve_references()
  config.population.seeds = members
  trained = len(population.members(config))  # Seeds times (1 + ablations), laid out as train.py does.
  mesh = parallel.make_mesh(trained)
  gan = state_lib.make_gan(config)
  num_examples = _NUM_EXAMPLES.value - _NUM_EXAMPLES.value % jax.device_count()
  state = jax.jit(lambda: population.init_state(gan, config, num_examples), out_shardings=parallel.by_member(mesh))()
  images = np.random.default_rng(0).integers(0, 256, (num_examples, config.image_size, config.image_size,
                                                       config.channels), dtype=np.uint8)
  images = parallel.host_to_global(images, parallel.batch_sharded(mesh))
  weights = jax.device_put(population.weights(config), parallel.by_member(mesh))
  train_fn = step_lib.make_train_fn(gan, config, mesh, num_examples)
  start = time.perf_counter()
  state, _ = train_fn(state, weights, images)
  jax.block_until_ready(state)
  compile_seconds = time.perf_counter() - start
  calls = -(-_WINDOW_STEPS.value // config.steps_per_call)
  rates = []
  for _ in range(_WINDOWS.value):
    start = time.perf_counter()
    for _ in range(calls):
      state, _ = train_fn(state, weights, images)
    jax.block_until_ready(state)
    rates.append(calls * config.steps_per_call / (time.perf_counter() - start))
  steps_per_sec = statistics.median(rates)
  stats = jax.devices()[0].memory_stats() or {}
  memory = stats.get("peak_bytes_in_use") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {"members": trained, "steps_per_sec": steps_per_sec, "compile_seconds": compile_seconds,
          "images_per_sec": trained * config.batch_size * config.n_dis * steps_per_sec,
          "memory_gib": memory / 2**30, "device": jax.devices()[0].device_kind}


def main(argv):
  del argv
  if _ONE.value:
    print("RESULT " + json.dumps(measure(_CONFIG.value, _ONE.value)), flush=True)
    return
  rows = []
  for members in map(int, _MEMBERS.value):
    run = subprocess.run([sys.executable, *sys.argv, f"--one={members}"], capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode or not lines:
      sys.exit(f"population of {members} failed:\n{run.stderr[-3000:]}")
    rows.append(json.loads(lines[0][len("RESULT "):]))
    row = rows[-1]
    print(f"P={row['members']:>2}: {row['steps_per_sec']:.2f} steps/s, {row['images_per_sec']:.0f} images/s in all "
          f"({row['images_per_sec'] / rows[0]['images_per_sec']:.2f}x P={rows[0]['members']}), compile "
          f"{row['compile_seconds']:.1f} s, peak memory {row['memory_gib']:.2f} GiB ({row['device']})", flush=True)


if __name__ == "__main__":
  app.run(main)
