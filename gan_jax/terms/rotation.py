"""SS-GAN's self-supervision (Chen et al. 2019): D's rotation head predicts which of four
quarter turns was applied to an image; D learns it on real images, and G is rewarded when
the turns of its own images are predictable."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gan_jax import options
from gan_jax.terms.core import Head, Judged, Term, classification_loss


def rotate90(images_BxHxWxC: jax.Array, quarter_turns_B: jax.Array) -> jax.Array:
  """Each square image rotated counter-clockwise by its own number of quarter turns (0-3)."""
  turns = jnp.stack([jnp.rot90(images_BxHxWxC, k, axes=(1, 2)) for k in range(4)], axis=1)
  return jnp.take_along_axis(turns, quarter_turns_B[:, None, None, None, None], axis=1)[:, 0]


def rotation_term(d: Judged):
  """Cross-entropy of the rotation head on batch "rotated" (real images for D, generated
  ones for G) against the turns applied."""
  loss, acc = classification_loss(d.feature("rotated", "rotation_logits"), d.batch["turns"])
  return loss, {"rotation_acc": acc}


@dataclasses.dataclass(frozen=True)
class Rotation:
  """SS-GAN's rotation head: D predicts which quarter turn was applied to an image."""
  d_weight: float = options.field(1.0, "In D's loss, on rotated real images.", ">= 0")
  g_weight: float = options.field(0.2, "In G's loss, on rotated generated images.", ">= 0")


def rotation_head(x_BxF, logits_BxK, features, *, dense, act, dtype):
  """SS-GAN's head (Chen et al. 2019): `rotation_logits`, `B x 4`, D's kind of final layer."""
  del act, dtype
  features["rotation_logits"] = dense(4, "rotation")(x_BxF).astype(jnp.float32)
  return logits_BxK


BLOCKS = {"rotation": Rotation}
HEADS = (Head(rotation_head, block="rotation"),)
TERMS = (Term("d_rotation", rotation_term, inputs=("rotated",), block="rotation", weight="d_weight"),
         Term("g_rotation", rotation_term, inputs=("rotated",), block="rotation", weight="g_weight"))
