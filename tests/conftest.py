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

  The test processes and their train.py, eval.py and notebook subprocesses also share a
  JAX compilation cache, fresh for each session (one for all pytest-xdist workers): a
  program compiled once, such as the tiny config's train step, is read back rather than
  compiled again by every test that runs it. The cache's key is the program itself (XLA's
  HLO, compile options, devices and JAX version), so a hit is the same executable.
  """
  os.environ["GAN_JAX_CACHE"] = str(tmp_path_factory.mktemp("gan_jax_cache"))
  if os.environ.get("PYTEST_XDIST_WORKER"):  # Each worker's basetemp is a folder of this session's.
    compilation_cache = tmp_path_factory.getbasetemp().parent / "jax_compilation_cache"
    compilation_cache.mkdir(exist_ok=True)
  else:
    compilation_cache = tmp_path_factory.mktemp("jax_compilation_cache")
  settings = {"JAX_COMPILATION_CACHE_DIR": str(compilation_cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  os.environ.update(settings)  # For subprocesses.
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache as jax_cache  # pylint: disable=g-import-not-at-top
  for name, value in settings.items():  # This process imported JAX before: its config is set here.
    jax.config.update(name.lower(), value if name == "JAX_COMPILATION_CACHE_DIR" else int(value))
  jax_cache.reset_cache()  # In case a program was compiled before this fixture: the cache is read from now on.


@pytest.fixture
def config():
  return tiny_config()


@pytest.fixture(scope="session")
def four_steps_on_one_device():
  """The tiny config's train state after 4 single steps on this process's one device, flattened."""
  import parallel_worker
  return parallel_worker.flatten(parallel_worker.run_steps(tiny_config(), 4))
