"""Shared fixtures: a tiny config that compiles in seconds on a 2-core CPU."""

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # `configs` is a folder of files, not an installed package.

# Seconds each test file took in a whole run of the suite, as `pytest --record-durations`
# measured them. The files run longest first: `--dist loadfile` hands each worker the next file
# in this order when it is nearly done with its last, so the long files start first and short
# ones fill in at the end (pytest-xdist's own order, most tests first, left test_multihost.py,
# one test of minutes, last). A file not measured yet runs last.
DURATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "durations.json")


def pytest_addoption(parser):
  parser.addoption("--record-durations", action="store_true",
                   help=f"write each test file's seconds (setup, call, teardown) to {DURATIONS}")


def pytest_configure(config):
  if getattr(config.option, "loadscopereorder", False):  # pytest-xdist's reordering, on by default.
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  seconds = {}
  if os.path.exists(DURATIONS):
    with open(DURATIONS) as f:
      seconds = json.load(f)
  items.sort(key=lambda item: -seconds.get(item.path.name, 0.0))  # Stable: a file's tests keep their order.


_FILE_SECONDS = {}


def pytest_runtest_logreport(report):  # In the controller, for every worker's tests too.
  name = os.path.basename(report.nodeid.split("::")[0])
  _FILE_SECONDS[name] = _FILE_SECONDS.get(name, 0.0) + report.duration


def pytest_sessionfinish(session):
  if session.config.getoption("record_durations") and not os.environ.get("PYTEST_XDIST_WORKER"):
    with open(DURATIONS, "w") as f:
      json.dump({name: round(s, 1) for name, s in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])}, f, indent=1)
      f.write("\n")


# What makes a config tiny: a few thousand parameters, steps every 2 (evaluations off: tests
# that evaluate turn them on). `tiny_config` sets them; train.py gets them as `TINY`.
TINY_FIELDS = {"model.latent_dim": 16, "model.generator_features": 8, "model.discriminator_features": 8,
               "batch_size": 8, "steps_per_call": 1, "log_every": 2, "save_every": 2, "sample_every": 2,
               "num_samples": 4, "eval_every": 0}
TINY = [f"--config.{field}={value}" for field, value in TINY_FIELDS.items()]


def tiny_config(base: str = "mnist_dcgan", **overrides):
  """A config of configs/ (default: the default one; `name:arg` passes arg to get_config)
  made tiny (`TINY_FIELDS`), 4 steps, no generation metrics, no game evaluator (unless `evals.game` is
  among them); then `overrides` ({dotted field: value})."""
  import importlib
  name, _, arg = base.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config(arg or None)
  if "evals.game" not in overrides:  # Two programs more to compile at each evaluation: tests that read it ask for it.
    del config.evals.game
  overrides = {**TINY_FIELDS, "total_steps": 4, "evals.generation.num_samples": 0, **overrides}
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def discriminator(image_size: int = 28, blocks: dict | None = None, **model):
  """D as `state.make_gan` builds it: mnist_dcgan's model at width 4 (no stride-1 convolutions,
  `model` changes), with the heads of the term blocks `blocks` ({path: changes}) and no other."""
  from configs import base
  from gan_jax import state as state_lib
  config = tiny_config(image_size=image_size)
  del config.contrastive
  config.model.update({"discriminator_features": 4, **model})
  for path, changes in (blocks or {}).items():
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = base.block(path, **changes)
  return state_lib.make_gan(config).discriminator


def initial_state(config, gan=None, num_examples: int = 0):
  """(gan, `state.init_state` of `config` under `jax.jit`)."""
  import jax
  from gan_jax import state as state_lib
  gan = gan or state_lib.make_gan(config)
  return gan, jax.jit(lambda: state_lib.init_state(gan, config, num_examples))()


def initial_population(config, num_examples: int = 0, mesh=None):
  """(gan, `population.init_state` of `config`: the state `step.make_train_fn` trains, a member
  axis first (of size 1 for a single run), placed as `loop.train_and_evaluate` places it)."""
  import jax
  from gan_jax import parallel, population, state as state_lib
  gan = state_lib.make_gan(config)
  mesh = mesh or parallel.make_mesh(len(population.members(config)))
  init = lambda: population.init_state(gan, config, num_examples)
  return gan, jax.jit(init, out_shardings=parallel.by_member(mesh))()


def states_after(config, steps: tuple[int, ...], weights: dict[str, float] | None = None) -> dict:
  """{step: the host train state after that many calls of `step.make_train_fn` of `config` (a
  population or not)}, from one run of max(steps) calls on every visible device, the data and
  state placed as `loop.train_and_evaluate` places them (the same program, so the compilation
  cache has it); with `weights` ({term: weight}, one run) instead of the config's if given."""
  import jax
  import numpy as np
  from gan_jax import data, parallel, population, step as step_lib
  mesh = parallel.make_mesh(len(population.members(config)))
  parallel.check_batch_size(config.batch_size, mesh)
  train = data.load_process_share(config.data, "train", image_size=config.image_size, channels=config.channels,
                                  mesh=mesh)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  gan, state = initial_population(config, images.shape[0], mesh)
  train_fn = step_lib.make_train_fn(gan, config, mesh, images.shape[0])
  weights = population.weights(config) if weights is None else {k: np.float32([v]) for k, v in weights.items()}
  states = {}
  for step in range(1, max(steps) + 1):
    state, _ = train_fn(state, weights, images)
    if step in steps:
      states[step] = jax.device_get(state)  # Before the next call, which donates `state`.
  return states


def run_steps(config, steps: int, weights: dict[str, float] | None = None):
  """The host train state after `steps` calls of `step.make_train_fn` of `config` (`states_after`)."""
  return states_after(config, (steps,), weights)[steps]


def jit_step(config, gan=None):
  """`step(state, real, weights=None, **batch) -> (state, metrics)`: `step.train_step` of `config`
  jit-compiled, on `real` (`n_dis x B x H x W x C`) and the other batches given, with the
  config's term weights unless `weights` says otherwise."""
  import jax
  import numpy as np
  from gan_jax import population
  from gan_jax import state as state_lib
  from gan_jax import step as step_lib
  gan = gan or state_lib.make_gan(config)
  settings = step_lib.step_settings(config)
  compiled = jax.jit(lambda s, b, w: step_lib.train_step(s, b, w, gan=gan, settings=settings))
  default = {name: np.float32(w) for name, w in population.member_weights(config, population.members(config)[0]).items()}
  return lambda state, real, weights=None, **batch: compiled(state, {"real": real, **batch}, weights or default)


def judged(batches, step=0, **batch):
  """A `terms.core.Judged` of hand-made D outputs: `batches` maps each batch name to
  {"logits": `B`, feature name: `B x ...`} (the same features for every batch), stacked in
  that order; `batch` is what they were made from (codes, turns, labels, ...)."""
  import jax.numpy as jnp
  from gan_jax.terms.core import Judged
  parts, start = {}, 0
  for name, outputs in batches.items():
    size = len(outputs["logits"])
    parts[name], start = slice(start, start + size), start + size
  stack = lambda key: jnp.concatenate([jnp.asarray(outputs[key], jnp.float32) for outputs in batches.values()])
  features = {key: stack(key) for key in next(iter(batches.values())) if key not in ("logits", "images")}
  images = stack("images") if all("images" in o for o in batches.values()) else None
  return Judged(images, stack("logits"), features, parts, batch, jnp.asarray(step), None)


def session_folder(tmp_path_factory, name: str):
  """A folder of this test session that every pytest-xdist worker shares."""
  if not os.environ.get("PYTEST_XDIST_WORKER"):
    return tmp_path_factory.mktemp(name)
  folder = tmp_path_factory.getbasetemp().parent / name  # Each worker's basetemp is a folder of the session's.
  folder.mkdir(exist_ok=True)
  return folder


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_directory(tmp_path_factory):
  """Domain classifiers and reference statistics go to a cache fresh for each session, one
  for all pytest-xdist workers, never ~/.cache (the mnist_scorer fixture trains the classifier
  once for all).

  The test processes and their train.py, eval.py and notebook subprocesses also share a
  JAX compilation cache, fresh for each session (one for all pytest-xdist workers): a
  program compiled once, such as the tiny config's train step, is read back rather than
  compiled again by every test that runs it. The cache's key is the program itself (XLA's
  HLO, compile options, devices and JAX version), so a hit is the same executable.

  They also compile with `jax_disable_most_optimizations` (XLA's backend optimisation level
  0): the tests' tiny programs run for seconds but took minutes to optimise, and the suite
  checks what the programs compute, not how fast. On a 2-core CPU it cut the suite from
  16 min 38 s to 11 min 18 s (1,939 s to 1,299 s of test time). The same JAX programs;
  `JAX_DISABLE_MOST_OPTIMIZATIONS=0` in the environment runs them fully optimised.
  """
  os.environ["GAN_JAX_CACHE"] = str(session_folder(tmp_path_factory, "gan_jax_cache"))
  compilation_cache = session_folder(tmp_path_factory, "jax_compilation_cache")
  settings = {"JAX_COMPILATION_CACHE_DIR": str(compilation_cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
              "JAX_DISABLE_MOST_OPTIMIZATIONS": os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")}
  os.environ.update(settings)  # For subprocesses.
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache as jax_cache  # pylint: disable=g-import-not-at-top
  for name, value in settings.items():  # This process imported JAX before: its config is set here.
    if name == "JAX_DISABLE_MOST_OPTIMIZATIONS":
      jax.config.update(name.lower(), value.lower() in ("1", "true"))
    else:
      jax.config.update(name.lower(), value if name == "JAX_COMPILATION_CACHE_DIR" else int(value))
  jax_cache.reset_cache()  # In case a program was compiled before this fixture: the cache is read from now on.


@pytest.fixture
def config():
  return tiny_config()


@pytest.fixture(scope="session")
def steps_on_one_device():
  """{3: ..., 4: ...}: the tiny config's train state after 3 and after 4 single steps on this
  process's one device (one run), flattened."""
  import parallel_worker
  return {step: parallel_worker.flatten(state) for step, state in
          states_after(tiny_config(), (3, 4)).items()}


@pytest.fixture(scope="session")
def four_steps_on_one_device(steps_on_one_device):
  """The tiny config's train state after 4 single steps on this process's one device, flattened."""
  return steps_on_one_device[4]


@pytest.fixture(scope="session")
def mnist_scorer(tmp_path_factory):
  """The domain-classifier evaluator of mnist_5k (`generation.GenerationEvaluator`). The first
  worker to ask trains its classifier into the session's cache ($GAN_JAX_CACHE) while holding a
  lock; the others wait, then read it, as do the train.py processes that tests start after it."""
  import fcntl
  from gan_jax import data
  from gan_jax.evaluation import generation
  settings = generation.get_config(tiny_config(**{"evals.generation.num_samples": 1000}))
  load = lambda split: data.load_split(tiny_config().data, split, image_size=28, channels=1)
  with open(session_folder(tmp_path_factory, "locks") / "mnist_scorer", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
    return generation.GenerationEvaluator(settings, load("train"), load("train"), load("test"))
