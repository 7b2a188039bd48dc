"""Shared fixtures: a tiny config that compiles in seconds on a 2-core CPU."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `configs` is a folder of files, not an installed package.


def tiny_config(base: str = "mnist_dcgan", **overrides):
  """A config of configs/ (default: the default one; `name:arg` passes arg to get_config)
  shrunk to a few thousand parameters and a handful of steps."""
  import importlib
  name, _, arg = base.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config(arg or None)
  config.model.latent_dim = 16
  config.model.generator_features = 8
  config.model.discriminator_features = 8
  config.batch_size = 8
  config.steps_per_call = 1
  config.total_steps = 4
  config.log_every = 2
  config.save_every = 2
  config.sample_every = 2
  config.eval_every = 0  # Tests that evaluate turn it on.
  config.num_samples = 4
  config.evals.generation.num_samples = 0  # Tests that score generation turn it on.
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_directory(tmp_path_factory):
  """Domain classifiers and reference statistics go to a fresh cache, never ~/.cache.

  The train.py subprocesses of the tests also share a JAX compilation cache: after the
  first, each starts in seconds rather than compiling the same tiny programs again.
  (This process imported JAX before the fixture runs, so it does not use that cache.)
  """
  os.environ["GAN_JAX_CACHE"] = str(tmp_path_factory.mktemp("gan_jax_cache"))
  os.environ["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_compilation_cache"))
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


@pytest.fixture
def config():
  return tiny_config()


@pytest.fixture(scope="session")
def four_steps_on_one_device():
  """The tiny config's train state after 4 single steps on this process's one device, flattened."""
  import parallel_worker
  return parallel_worker.flatten(parallel_worker.run_steps(tiny_config(), 4))
