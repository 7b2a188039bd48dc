"""The train state: a plain dict pytree, and the pure pieces that make it.

  step          int32 scalar, the number of generator updates done
  rng           uint32[2] key; the step's randomness is `fold_in(rng, step)`
  generator     flax variables {"params", "batch_stats"}
  discriminator flax variables {"params"}, plus "batch_stats" (the spectral norms'
                power-iteration vectors) in the SNGAN ResNet
  g_opt_state, d_opt_state   Optax states
  g_ema_params  exponential moving average of the generator params (samples use it)
  d_ema_params  with `config.d_ema_decay` > 0: the same of the discriminator's params (the
                evaluator reads the GAN-native heads from it, as a mean teacher is read)
  neighbours    with `config.infogan.neighbours`: int32 N x k, each training image's k nearest
                other training images by D's embedding (`neighbours.py`), mined every `refresh` steps
  code_refit_step  with `config.infogan.refit`: int32, the step at which Q's refit heads
                were fitted (`refit.py`), -1 before; they are read only at that step
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gan_jax import conv
from gan_jax import models
from gan_jax import terms

SCHEDULES = ("constant", "linear")
# Compute dtypes of `config.model.dtype`; parameters, optimizer state and losses stay float32.
COMPUTE_DTYPES = ("float32", "bfloat16")
# The streams of randomness of a run, each drawn from config.seed by its name (`stream`).
SEED_STREAMS = ("init", "train", "data", "sample", "labelled")
# The fields of every config (defaults and comments: configs/base.py). Optional beside them:
# the term blocks (`terms.BLOCKS`), absent where the term is off, and `debug_nan_step`
# (tests only: the losses of that step are made NaN).
FIELDS = ("seed", "data", "image_size", "channels", "model", "augment", "n_dis", "batch_size", "total_steps",
          "ema_decay", "d_ema_decay", "g_optimizer", "d_optimizer", "steps_per_call", "log_every", "save_every",
          "keep", "sample_every", "num_samples", "eval_every", "skip_nonfinite_updates", "population", "evals")
OPTIONAL_FIELDS = ("debug_nan_step",) + tuple(b for b in terms.BLOCKS if "." not in b)


class GAN(NamedTuple):
  """The pure pieces of one GAN: linen modules and Optax transformations."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  latent_dim: int  # Noise dimensions; the generator's input adds the InfoGAN codes.
  num_categories: int = 0  # InfoGAN's categorical code: its number of values (0: none).
  num_continuous: int = 0  # InfoGAN's continuous codes, each uniform in [-1, 1].

  @property
  def input_dim(self) -> int:
    return self.latent_dim + self.num_categories + self.num_continuous


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that is unknown or missing, or of the model,
  the optimizers, the run's shape or a term block, that holds a value training cannot use."""
  for name in config.keys():
    if name not in FIELDS + OPTIONAL_FIELDS:
      raise ValueError(f"config.{name} is not a field; allowed: {', '.join(FIELDS + OPTIONAL_FIELDS)}")
  for name in FIELDS:
    if name not in config:
      raise ValueError(f"config lacks its field {name!r} (configs/base.py declares it)")
  positive = ["batch_size", "total_steps", "n_dis", "image_size", "model.latent_dim", "model.generator_features",
              "model.discriminator_features", "g_optimizer.learning_rate", "d_optimizer.learning_rate"]
  for field in positive:
    value = functools.reduce(getattr, field.split("."), config)
    if not value > 0:
      raise ValueError(f"config.{field}={value!r} must be positive")
  if config.channels not in (1, 3):
    raise ValueError(f"config.channels={config.channels!r}; allowed: 1, 3")
  if config.model.dtype not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.dtype={config.model.dtype!r}; allowed: {', '.join(COMPUTE_DTYPES)}")
  conv.check_backward(config.model.conv_backward)
  for field in ("ema_decay", "d_ema_decay"):
    if not 0.0 <= config[field] < 1.0:
      raise ValueError(f"config.{field}={config[field]!r} must be in [0, 1)")
  for which in ("g_optimizer", "d_optimizer"):
    opt = config[which]
    if not opt.weight_decay >= 0:
      raise ValueError(f"config.{which}.weight_decay={opt.weight_decay!r} must be >= 0 (0: Adam; > 0: AdamW)")
    if opt.schedule not in SCHEDULES:
      raise ValueError(f"config.{which}.schedule={opt.schedule!r}; allowed: {', '.join(SCHEDULES)}")
  terms.check_config(config)
  module = models.get_model_module(config.model.name)
  if hasattr(module, "check_image_size"):
    module.check_image_size(config.image_size)


def make_optimizer(opt_config: ml_collections.ConfigDict, num_updates: int) -> optax.GradientTransformation:
  """Optax optimizer from `config.{g,d}_optimizer`: Adam, or AdamW where `weight_decay` > 0
  (one field for one choice: Adam's update ignores a weight decay a config could still state).

  `num_updates` is how many times this optimizer steps in the whole run (the
  discriminator's is `n_dis` times the generator's): the linear schedule reaches 0 there.
  """
  lr = opt_config.learning_rate
  if opt_config.schedule == "linear":  # Linear decay to zero over the run, as in SNGAN.
    lr = optax.linear_schedule(lr, 0.0, num_updates)
  if opt_config.weight_decay:
    return optax.adamw(lr, b1=opt_config.b1, b2=opt_config.b2, weight_decay=opt_config.weight_decay)
  return optax.adam(lr, b1=opt_config.b1, b2=opt_config.b2)


def make_gan(config: ml_collections.ConfigDict) -> GAN:
  """Builds the modules and optimizers that a config names; D carries the heads its terms read."""
  module = models.get_model_module(config.model.name)
  code = config.get("infogan")
  generator = models.build(module.Generator, config.model, image_size=config.image_size, channels=config.channels)
  backbone = models.build(module.Backbone, config.model, image_size=config.image_size)
  discriminator = models.Discriminator(backbone, heads=terms.heads(config), outputs=terms.logit_outputs(config))
  return GAN(generator, discriminator,
             make_optimizer(config.g_optimizer, config.total_steps),
             make_optimizer(config.d_optimizer, config.total_steps * config.n_dis),
             config.model.latent_dim, code.categories if code else 0, code.continuous if code else 0)


def stream(key: jax.Array, name: str) -> jax.Array:
  """The stream of randomness `name` of `key` (fold_in of the name's CRC-32): each stream is
  named by what it draws, so adding one never moves another, and none is kept by number."""
  return jax.random.fold_in(key, zlib.crc32(name.encode()))


def seed_keys(seed: int) -> dict[str, jax.Array]:
  """The independent random streams of a run (`SEED_STREAMS`), from `config.seed`."""
  root = jax.random.PRNGKey(seed)
  return {name: stream(root, name) for name in SEED_STREAMS}


def init_state(gan: GAN, config: ml_collections.ConfigDict, num_examples: int = 0) -> dict[str, Any]:
  """A fresh train state (pure: run it under `jax.jit` or `jax.eval_shape`). `num_examples`,
  the training set's size, is needed only by `infogan.neighbours` (a table of neighbours per
  training image; mined at step 0, so it starts empty)."""
  keys = seed_keys(config.seed)
  g_key, d_key = jax.random.split(keys["init"])
  g_vars = gan.generator.init(g_key, jnp.zeros((1, gan.input_dim), jnp.float32), train=False)
  d_vars = gan.discriminator.init(d_key, jnp.zeros((1, config.image_size, config.image_size, config.channels)))
  state = {"step": jnp.zeros((), jnp.int32), "rng": keys["train"], "generator": g_vars, "discriminator": d_vars,
           "g_opt_state": gan.g_tx.init(g_vars["params"]), "d_opt_state": gan.d_tx.init(d_vars["params"]),
           "g_ema_params": g_vars["params"]}
  if config.d_ema_decay:
    state["d_ema_params"] = d_vars["params"]
  if (mining := terms.block(config, "infogan.neighbours")) is not None:
    if not num_examples > mining.k:
      raise ValueError(f"config.infogan.neighbours.k={mining.k!r} needs a training set of more than {mining.k} "
                       f"images (given: {num_examples}; init_state's num_examples)")
    state["neighbours"] = jnp.zeros((num_examples, mining.k), jnp.int32)
  if terms.block(config, "infogan.refit") is not None:
    state["code_refit_step"] = jnp.full((), -1, jnp.int32)  # Refit heads count only at this step.
  return state
