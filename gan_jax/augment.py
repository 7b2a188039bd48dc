"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for the discriminator's inputs.

The same policy of random transformations (drawn independently per image) is applied to
the real and generated images the discriminator judges real or fake, in its update and
in the generator's, so the generator is not taught to produce augmented images, and the
discriminator cannot memorise a small training set pixel by pixel. (The inputs of the
gradient penalty and of the rotation loss are not augmented.) `policy` is a
comma-separated list of:

  translation   shift by up to 1/8 of the image size in each direction, zero-filled
  cutout        zero a square of half the image size at a random position
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

def parse_policy(policy: str, field: str = "augment") -> tuple[str, ...]:
  """The names in a comma-separated `policy` ('' = none); ValueError naming `config.<field>`
  on an unknown one."""
  names = tuple(p.strip() for p in policy.split(",") if p.strip())
  for name in names:
    if name not in POLICIES:
      raise ValueError(f"config.{field}={policy!r}: {name!r} is not known; allowed: {', '.join(POLICIES)} "
                       "(comma-separated), or '' for none")
  return names


def translation(key: jax.Array, x_BxHxWxC: jax.Array, ratio: float = 0.125) -> jax.Array:
  b, h, w, _ = x_BxHxWxC.shape
  sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(key)
  dy = jax.random.randint(ky, (b,), -sh, sh + 1)
  dx = jax.random.randint(kx, (b,), -sw, sw + 1)
  padded = jnp.pad(x_BxHxWxC, ((0, 0), (sh, sh), (sw, sw), (0, 0)))
  shift = lambda image, y, x: jax.lax.dynamic_slice(image, (sh - y, sw - x, 0), (h, w, image.shape[-1]))
  return jax.vmap(shift)(padded, dy, dx)


def cutout(key: jax.Array, x_BxHxWxC: jax.Array, ratio: float = 0.5) -> jax.Array:
  b, h, w, _ = x_BxHxWxC.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  ky, kx = jax.random.split(key)
  # Top-left corners such that the square's centre is anywhere in the image, as in DiffAugment.
  top = jax.random.randint(ky, (b, 1, 1), 0, h) - ch // 2
  left = jax.random.randint(kx, (b, 1, 1), 0, w) - cw // 2
  rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
  return jnp.where(inside[..., None], jnp.zeros((), x_BxHxWxC.dtype), x_BxHxWxC)


TRANSFORMS = {"translation": translation, "cutout": cutout}
POLICIES = tuple(TRANSFORMS)  # The names a policy may hold.


def diff_augment(key: jax.Array, x_BxHxWxC: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """`x` with each transformation of `policy` applied, independently per image."""
  for name, k in zip(policy, jax.random.split(key, max(len(policy), 1))):
    x_BxHxWxC = TRANSFORMS[name](k, x_BxHxWxC)
  return x_BxHxWxC
