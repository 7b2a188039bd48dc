"""The multi-device half of tests/test_parallel.py, run in a subprocess with fake CPU devices.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/parallel_worker.py OUT_DIR

XLA fixes the number of CPU devices at start-up, so the test process (1 device) starts
this one. In OUT_DIR it writes: `three_steps.npz` (the state after 3 steps), `refit.npz`
(Q's heads refitted on the initial state of an InfoGAN config), `run_8/`
(a 4-step training run), resumes `run_1/` (a 2-step run the test wrote on 1 device) to
step 4, and `uneven_batch.txt` (the error of a batch the devices do not divide).
"""

import functools
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conftest import run_steps, tiny_config  # noqa: E402
from configs import base  # noqa: E402
from gan_jax import data, loop, parallel, population, refit, state as state_lib  # noqa: E402


def refit_config():
  """A tiny InfoGAN config whose Q heads are refitted (`refit.make_refit_fn`)."""
  config = tiny_config("mnist_infogan")
  config.infogan.refit = base.block("infogan.refit", heads=2, steps=3, dim=8, learning_rate=1e-3)
  return config


def refit_heads(config) -> dict[str, np.ndarray]:
  """Q's refit heads (flattened) and their losses, `make_refit_fn` on every visible device
  applied to the initial state, on the host."""
  mesh = parallel.make_mesh()
  gan = state_lib.make_gan(config)
  train = data.load_process_share(config.data, "train", image_size=config.image_size, channels=config.channels,
                                  mesh=mesh)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  state = jax.jit(functools.partial(population.init_state, gan, config, images.shape[0]),
                  out_shardings=parallel.by_member(mesh))()
  state, losses = refit.make_refit_fn(gan, config, mesh)(state, images)
  params = jax.device_get(state["discriminator"]["params"])
  return {**flatten({name: value for name, value in params.items() if name.startswith("code_refit")}),
          "losses": np.asarray(losses)}


def flatten(state) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(state)}


def main(out_dir: str):
  assert jax.device_count() == 8, jax.devices()
  np.savez(os.path.join(out_dir, "three_steps.npz"), **flatten(run_steps(tiny_config(), 3)))
  np.savez(os.path.join(out_dir, "refit.npz"), **refit_heads(refit_config()))
  loop.train_and_evaluate(tiny_config(), os.path.join(out_dir, "run_8"))
  loop.train_and_evaluate(tiny_config(), os.path.join(out_dir, "run_1"))  # Resumes the test's run.
  try:
    loop.train_and_evaluate(tiny_config(batch_size=12), os.path.join(out_dir, "uneven"))
    message = "no error"
  except ValueError as e:
    message = str(e)
  with open(os.path.join(out_dir, "uneven_batch.txt"), "w") as f:
    f.write(message)


if __name__ == "__main__":
  main(sys.argv[1])
