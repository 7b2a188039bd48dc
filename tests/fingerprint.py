"""Numerics fingerprints of every committed config: what a refactor must leave unchanged.

  JAX_DISABLE_MOST_OPTIMIZATIONS=1 python tests/fingerprint.py [tiny|full [config ...]]

rewrites those fingerprints in tests/fingerprints.json.

For each config (and config argument) of `CONFIGS`: 3 training steps from seed 0 through
the functions train.py runs, one step per call, evaluations off, refit steps cut to 3 and the
FixMatch consistency terms on from step 0 at threshold 0 (so that they count in 3 steps),
recording every metric the step returns (each term's loss, D's outputs, gradient and param
norms) and the refit's head losses. Metrics of 3 steps, not params after 8: Adam turns float
rounding in a near-zero gradient (a bias before BatchNorm, say) into a full-size step of
either sign, so after 8 steps single leaves of the params differed by up to 100% between two
x86 CPUs while the first steps' losses agreed to 1e-6. The losses of step k see the first k-1
updates of D and G, each term and its weight; the EMA of the params is not seen.
Recorded last when every random stream came to be drawn by its name (`state.stream`, issue 40),
which moved every config; before that, the step had been checked against recordings since the
update step was split into terms (786c4f4), within the tolerances of test_fingerprints.py.
The CIFAR-10 configs train on
`mnist_5k` at 32 px with 3 channels (no CIFAR-10 data here). Two sizes: "full", the configs
as committed (minutes on a 2-core CPU, most of it compiling cifar10_sngan), and "tiny", the
same configs with narrow networks and batch 8 (seconds each), which the suite checks. The
suite compiles with `jax_disable_most_optimizations` (conftest), so the fingerprints are
written that way too.
"""

import importlib
import json
import os
import sys
import tempfile

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import data, parallel, population, refit, runs, state as state_lib, step as step_lib, terms  # noqa: E402

CONFIGS = ("mnist_dcgan", "mnist_dcgan:rotation", "mnist_infogan", "mnist_infogan:30min", "mnist_ssl",
           "mnist_ssl:supervised_only", "mnist_contrad", "cifar10_dcgan", "cifar10_sngan", "cifar10_ssl",
           "cifar10_contrad")
STEPS = 3
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fingerprints.json")


SIZES = ("tiny", "full")


def fingerprint_config(spec: str, size: str):
  """The config `spec` ("name" or "name:arg") as the fingerprints of `size` train it."""
  name, _, arg = spec.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config(arg or None)
  if name.startswith("cifar10"):
    config.data.name, config.image_size, config.channels = "mnist_5k", 32, 3
  config.steps_per_call = 1  # Compiles in a quarter of the time; the same step.
  config.eval_every = 0
  config.evals.generation.num_samples = 0
  if terms.block(config, "infogan.refit") is not None:
    config.infogan.refit.steps = 3
  for path in ("infogan.consistency", "kplus1.consistency"):
    if (block := terms.block(config, path)) is not None:
      block.update(start=0, threshold=0.0)
  if size == "tiny":
    config.model.latent_dim = 16
    config.model.generator_features = config.model.discriminator_features = 8
    config.batch_size = 8
  return config


def trace(config, steps: int = STEPS) -> dict[str, list]:
  """The step's metrics at each of `steps` steps of `config` on this process's devices, then
  the losses of Q's heads refitted where the config refits them."""
  mesh = parallel.make_mesh()
  gan = state_lib.make_gan(config)
  train = data.load_split(config.data, "train", image_size=config.image_size, channels=config.channels)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  state = jax.jit(lambda: population.init_state(gan, config, len(images)), out_shardings=parallel.by_member(mesh))()
  labelled = ()
  if "kplus1" in config:
    with tempfile.TemporaryDirectory() as workdir:
      subset = runs.load_labelled_subset(config, workdir, train)
    labelled = tuple(jax.device_put(x[None], parallel.by_member(mesh)) for x in (subset.images, subset.labels))
  train_fn = step_lib.make_train_fn(gan, config, mesh, len(images))
  weights = population.weights(config)
  traced = {"steps": [], "refit": []}
  for _ in range(steps // config.steps_per_call):
    state, metrics = train_fn(state, weights, images, *labelled)
    traced["steps"].append({name: float(np.mean(value)) for name, value in jax.device_get(metrics).items()})
  if terms.block(config, "infogan.refit") is not None:
    state, head_losses = refit.make_refit_fn(gan, config, mesh)(state, images)
    traced["refit"] = [float(x) for x in np.ravel(jax.device_get(head_losses))]
  return traced


def main(sizes=SIZES, specs=CONFIGS):
  recorded = {}
  if os.path.exists(PATH):
    with open(PATH) as f:
      recorded = json.load(f)
  for size in sizes:
    recorded.setdefault(size, {}).update({spec: trace(fingerprint_config(spec, size))
                                          for spec in specs})
  recorded.update(steps=STEPS, jax=jax.__version__)
  with open(PATH, "w") as f:
    json.dump(recorded, f, indent=1, sort_keys=True)
    f.write("\n")


if __name__ == "__main__":  # [size [config ...]]
  main(tuple(sys.argv[1:2]) or SIZES, tuple(sys.argv[2:]) or CONFIGS)
