"""Gradient penalties on D: WGAN-GP and R1."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from gan_jax import options
from gan_jax.terms.core import Judged, Term


def gradient_penalty(discriminate: Callable[[jax.Array], jax.Array], real_BxHxWxC: jax.Array,
                     fake_BxHxWxC: jax.Array, key: jax.Array) -> jax.Array:
  """WGAN-GP penalty (Gulrajani et al. 2017): mean over x_hat of (||grad_x D(x_hat)||_2 - 1)^2.

  `x_hat` are uniform random interpolations between each real image and a fake one;
  `discriminate` maps images `B x H x W x C` to logits `B`. Multiply by the weight
  (10 in the paper) outside.
  """
  eps_B = jax.random.uniform(key, (real_BxHxWxC.shape[0], 1, 1, 1))
  x_hat = eps_B * real_BxHxWxC + (1.0 - eps_B) * fake_BxHxWxC
  # Each logit depends only on its own image, so the gradient of the sum is per-example.
  grads = jax.grad(lambda x: jnp.sum(discriminate(x)))(x_hat)
  norms_B = jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1) + 1e-12)
  return jnp.mean((norms_B - 1.0) ** 2)


def r1_penalty(discriminate: Callable[[jax.Array], jax.Array], real_BxHxWxC: jax.Array) -> jax.Array:
  """R1 (Mescheder et al. 2018): mean over real images of ||grad_x D(x)||^2.

  Multiply by gamma / 2 outside (`config.r1.gamma`); `discriminate` maps images to logits.
  """
  grads = jax.grad(lambda x: jnp.sum(discriminate(x)))(real_BxHxWxC)
  return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1))


def gradient_penalty_term(d: Judged):
  """WGAN-GP between the un-augmented real and generated batches."""
  return gradient_penalty(d.discriminate, d.batch["real"], d.batch["fake"], d.batch["key"]), {}


def r1_term(d: Judged):
  """R1 on the real images as D judges them (augmented)."""
  return r1_penalty(d.discriminate, d.image("real")), {}


@dataclasses.dataclass(frozen=True)
class GradientPenalty:
  """WGAN-GP: (||grad D||_2 - 1)^2 between real and generated images (with adversarial.loss="wasserstein")."""
  weight: float = options.field(10.0, "In D's loss (10 in the paper).", ">= 0")


@dataclasses.dataclass(frozen=True)
class R1:
  """R1: gamma / 2 x E ||grad D(real)||^2."""
  gamma: float = options.field(10.0, "The penalty's weight, halved.", ">= 0")


BLOCKS = {"gradient_penalty": GradientPenalty, "r1": R1}
TERMS = (Term("d_gradient_penalty", gradient_penalty_term, inputs=(), block="gradient_penalty", weight="weight"),
         Term("d_r1", r1_term, inputs=("real",), block="r1", weight="gamma", weight_scale=0.5))
