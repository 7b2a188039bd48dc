"""SCAN's neighbours (Van Gansbeke et al. 2020): each training image's nearest other
training images by D's embedding, mined on the devices every `infogan.neighbours.refresh`
steps and kept in the train state (`state["neighbours"]`); each step pairs every real image
with one of them, drawn at random, for InfoGAN's neighbour term."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gan_jax import data
from gan_jax import population as population_lib
from gan_jax.state import GAN


def pairing_embedding(features: dict[str, jax.Array]) -> jax.Array:
  """The embedding images are paired by: D's contrastive projection head, else `pre_logits`."""
  return features["projection" if "projection" in features else "pre_logits"]


def map_in_blocks(fn, xs: tuple[jax.Array, ...], block: int) -> jax.Array:
  """`fn(*xs)` (an array or a tuple of them) computed `block` rows at a time under `lax.map`
  (one block's activations in memory), the arrays padded to a whole number of blocks and
  the padding cut off again."""
  n = xs[0].shape[0]
  block = min(block, n)
  blocks = [jnp.pad(x, ((0, -n % block),) + ((0, 0),) * (x.ndim - 1)).reshape(-1, block, *x.shape[1:]) for x in xs]
  out = jax.lax.map(lambda args: fn(*args), tuple(blocks))
  return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], out)


def nearest_neighbours(embeddings_NxP: jax.Array, k: int, block: int = 1024) -> jax.Array:
  """int32 `N x k`: each row's k nearest other rows by cosine, nearest first, `block` rows
  at a time (memory `block x N`, not `N x N`)."""
  n = embeddings_NxP.shape[0]
  e = embeddings_NxP / jnp.linalg.norm(embeddings_NxP, axis=1, keepdims=True).clip(1e-6)

  def top_k(rows, row_index):
    own = row_index[:, None] == jnp.arange(n)[None, :]
    return jax.lax.top_k(jnp.where(own, -jnp.inf, rows @ e.T), k)[1]
  return map_in_blocks(top_k, (e, jnp.arange(n)), block).astype(jnp.int32)


def map_discriminator(gan: GAN, d_vars, images_u8: jax.Array, read, block: int = 500):
  """`read(features)` (an array or a tuple of them) of D, in evaluation mode, on each uint8
  image, `block` images at a time; traceable, for use inside a jit'd function."""
  def apply(x_u8):
    _, features = gan.discriminator.apply(d_vars, data.to_model_range(x_u8), train=False)
    return read(features)
  return map_in_blocks(apply, (images_u8,), block)


def mine_neighbours(gan: GAN, d_vars, images_u8: jax.Array, k: int, block: int = 500) -> jax.Array:
  """int32 `N x k`: the neighbours of each uint8 training image, by D's embedding of the
  un-augmented image (its projection head, else `pre_logits`), `block` images at a time."""
  embed = lambda features: pairing_embedding(features).astype(jnp.float32)
  return nearest_neighbours(map_discriminator(gan, d_vars, images_u8, embed, block), k)


def refresh(gan: GAN, state, images_u8: jax.Array, every: int):
  """The population's state (a leading member axis) with every member's table mined afresh
  where their common step is a multiple of `every`."""
  k = state["neighbours"].shape[-1]
  mine = functools.partial(population_lib.map_members, lambda d_vars: mine_neighbours(gan, d_vars, images_u8, k))
  return jax.lax.cond(state["step"][0] % every == 0, lambda s: {**s, "neighbours": mine(s["discriminator"])}, lambda s: s, state)


def draw(state, idx: jax.Array, key: jax.Array) -> jax.Array:
  """Indices of one of each image's neighbours, drawn at random from `fold_in(key, step)`."""
  pick = jax.random.randint(jax.random.fold_in(key, state["step"]), idx.shape, 0, state["neighbours"].shape[1])
  return state["neighbours"][idx, pick]
