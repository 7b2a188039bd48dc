"""The generator's inputs, and images from the EMA generator (samples, generation metrics)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gan_jax.state import GAN, seed_keys, stream


def sample_latents(key: jax.Array, batch_size: int, gan: GAN) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Generator inputs `B x input_dim`: N(0, 1) noise, then the one-hot categorical code
  (uniform over its values), then the continuous codes (uniform in [-1, 1]).
  Returns (inputs, categories int32 `B`, continuous `B x C`)."""
  # The noise takes `key` itself, so a GAN without codes draws what one with codes draws.
  c_key, u_key = stream(key, "categories"), stream(key, "continuous")
  z = jax.random.normal(key, (batch_size, gan.latent_dim))
  categories = jax.random.randint(c_key, (batch_size,), 0, max(gan.num_categories, 1))
  continuous = jax.random.uniform(u_key, (batch_size, gan.num_continuous), minval=-1.0, maxval=1.0)
  one_hot = jax.nn.one_hot(categories, gan.num_categories)
  return jnp.concatenate([z, one_hot, continuous], axis=1), categories, continuous


def grid_latents(key: jax.Array, num_samples: int, gan: GAN) -> tuple[jax.Array, int]:
  """Generator inputs for a sample grid, and its number of columns.

  With a categorical code: one row per code value and `num_samples // categories`
  columns, each column one noise vector across the rows (continuous codes at 0), so
  a row shows what its code means. Otherwise `num_samples` noise vectors, square grid.
  """
  if not gan.num_categories:
    return sample_latents(key, num_samples, gan)[0], 0
  columns = max(num_samples // gan.num_categories, 1)
  z = jnp.tile(jax.random.normal(key, (columns, gan.latent_dim)), (gan.num_categories, 1))
  categories = jnp.repeat(jnp.arange(gan.num_categories), columns)
  continuous = jnp.zeros((len(categories), gan.num_continuous))
  return jnp.concatenate([z, jax.nn.one_hot(categories, gan.num_categories), continuous], axis=1), columns


def make_ema_variables_fn(gan: GAN, seed: int, num_stat_samples: int = 1024):
  """`ema_variables(state)`: the EMA generator's variables, ready to sample from.

  The EMA generator needs BatchNorm statistics of its own: the training generator's
  running statistics describe other weights. They are recomputed on `num_stat_samples`
  fixed latents ("standing statistics"), so samples of a state are deterministic and
  independent of the batch they are drawn in.
  """
  z_stats = sample_latents(stream(seed_keys(seed)["sample"], "statistics"), num_stat_samples, gan)[0]
  # Momentum 0: the running statistics become those of this one batch. A generator without
  # BatchNorm (no `bn_momentum`) has none to compute.
  has_statistics = "bn_momentum" in {f.name for f in dataclasses.fields(gan.generator)}
  batch_statistics = gan.generator.clone(bn_momentum=0.0) if has_statistics else gan.generator

  def ema_variables(state):
    variables = {**state["generator"], "params": state["g_ema_params"]}
    _, updates = batch_statistics.apply(variables, z_stats, train=True, mutable=["batch_stats"])
    return {**variables, **updates}

  return ema_variables


def make_sample_fn(gan: GAN, seed: int, num_stat_samples: int = 1024):
  """`sample(state, z_NxZ) -> images N x H x W x C` in [-1, 1] from the EMA generator
  (`make_ema_variables_fn`)."""
  ema_variables = make_ema_variables_fn(gan, seed, num_stat_samples)
  return jax.jit(lambda state, z: gan.generator.apply(ema_variables(state), z, train=False))


def make_generate_fn(gan: GAN, seed: int, batch_size: int, online: bool = False):
  """`generate(state) -> sample_batch`, where `sample_batch(key)` is `batch_size` images in
  [-1, 1] from the EMA generator on fresh latents (codes included) drawn from `key`: what
  generation metrics score. The standing statistics are computed once per state. With `online`,
  from the generator being trained, with its running statistics: the one D plays against."""
  variables_of = (lambda state: state["generator"]) if online else jax.jit(make_ema_variables_fn(gan, seed))
  apply = jax.jit(lambda variables, key: gan.generator.apply(variables, sample_latents(key, batch_size, gan)[0],
                                                              train=False))

  def generate(state):
    variables = variables_of(state)
    return lambda key: apply(variables, key)

  return generate
