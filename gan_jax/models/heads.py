"""The heads every discriminator can carry on its pooled features, built one way for all."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


# The hidden activation of the re-fitted Q heads, which `refit` fits with the same function.
REFIT_ACTIVATION = lambda x: nn.leaky_relu(x, 0.1)  # pylint: disable=unnecessary-lambda-assignment


def discriminator_heads(d: nn.Module, x_BxF: jax.Array, logits_BxK: jax.Array, features: dict,
                        dense: Callable[[int, str], Callable[[jax.Array], jax.Array]],
                        act: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """Adds the heads that discriminator `d`'s fields ask for to `features` and returns the
  real/fake logits `B`. Call inside `d`'s compact `__call__` (the heads are its submodules).

  Args:
    d: a discriminator with fields num_classes, projection_dim, rotation_head,
      code_categories, code_continuous, code_hidden, code_heads,
      code_refit_heads, dtype. Q reads `x_BxF`.
      With code_heads = H > 1, Q has H - 1 more heads over the categorical code, each with
      its own hidden layer (`code_hidden_{i}`, `code_{i}`), all reading the same input: the
      heads of SCAN and IIC, which start apart and may settle on different clusterings,
      so that one can be chosen by its loss. `code_logits` stays the first head's;
      `code_logits_heads` (`B x H x code_categories`) holds all of them.
      With code_refit_heads = R > 0, R more heads of the same shape (`code_refit_hidden_{j}`,
      `code_refit_{j}`) that no loss trains: `refit.py` fits them on D's frozen features at
      the end of training. Their logits are `code_logits_refit` (`B x R x code_categories`)
      and what Q reads is `code_input`.
    x_BxF: the features the heads read (`pre_logits`).
    logits_BxK: the final layer's output: K = 1, or K = num_classes for the K+1
      classifier (Salimans et al. 2016), whose real/fake logit is their logsumexp (the
      fake class's logit fixed at 0); they are kept as `class_logits`.
    dense: `dense(features, name)` -> the architecture's final-layer kind (e.g. spectrally
      normalised), for the rotation head.
    act: the architecture's hidden activation.
  """
  logits_BxK = logits_BxK.astype(jnp.float32)
  if d.num_classes:
    features["class_logits"] = logits_BxK
    logits_BxK = jax.nn.logsumexp(logits_BxK, axis=-1, keepdims=True)
  if d.projection_dim:  # SimCLR-style projection (as in ContraD, Jeong & Shin 2021).
    h = act(nn.Dense(2 * d.projection_dim, dtype=d.dtype, name="projection_hidden")(x_BxF))
    features["projection"] = nn.Dense(d.projection_dim, dtype=d.dtype, name="projection")(h).astype(jnp.float32)
  if d.rotation_head:  # SS-GAN (Chen et al. 2019).
    features["rotation_logits"] = dense(4, "rotation")(x_BxF).astype(jnp.float32)
  if d.code_categories or d.code_continuous:  # InfoGAN's Q (Chen et al. 2016).
    q_in = x_BxF
    h = act(nn.Dense(d.code_hidden, kernel_init=nn.initializers.normal(0.02), dtype=d.dtype, name="code_hidden")(q_in))
    q = nn.Dense(d.code_categories + d.code_continuous, kernel_init=nn.initializers.normal(0.02), dtype=d.dtype,
                 name="code")(h).astype(jnp.float32)
    features["code_logits"], features["code_mean"] = q[:, :d.code_categories], q[:, d.code_categories:]
    if d.code_heads > 1:
      heads = [nn.Dense(d.code_categories, kernel_init=nn.initializers.normal(0.02), dtype=d.dtype, name=f"code_{i}")(
          act(nn.Dense(d.code_hidden, kernel_init=nn.initializers.normal(0.02), dtype=d.dtype,
                       name=f"code_hidden_{i}")(q_in))).astype(jnp.float32) for i in range(1, d.code_heads)]
      features["code_logits_heads"] = jnp.stack([features["code_logits"], *heads], axis=1)
    if d.code_refit_heads:
      features["code_input"] = q_in
      features["code_logits_refit"] = jnp.stack([
          nn.Dense(d.code_categories, dtype=d.dtype, name=f"code_refit_{j}")(REFIT_ACTIVATION(
              nn.Dense(d.code_hidden, dtype=d.dtype, name=f"code_refit_hidden_{j}")(q_in))).astype(jnp.float32)
          for j in range(d.code_refit_heads)], axis=1)
  return logits_BxK[:, 0]
