"""SimCLR's contrastive term on D (Chen et al. 2020; on a GAN's D as in ContraD, Jeong & Shin
2021): two augmented views of each real image must find each other through D's projection head."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import options
from gan_jax.terms.core import Head, Judged, Term


def nt_xent(z1_BxP: jax.Array, z2_BxP: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
  """SimCLR's contrastive loss (NT-Xent) between two views of a batch: each embedding must
  pick its other view among the 2B - 1 others. Returns (mean loss, accuracy)."""
  z = jnp.concatenate([z1_BxP, z2_BxP])
  z = z / jnp.linalg.norm(z, axis=1, keepdims=True).clip(1e-6)
  b = z1_BxP.shape[0]
  logits = (z @ z.T) / temperature
  logits = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, logits)
  targets = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  return loss, (logits.argmax(-1) == targets).mean()


def contrastive_term(d: Judged, *, temperature: float):
  """NT-Xent between D's projections of the real batch's views 0 and 1."""
  loss, acc = nt_xent(d.feature("view0", "projection"), d.feature("view1", "projection"), temperature)
  return loss, {"contrastive_acc": acc}


@dataclasses.dataclass(frozen=True)
class Contrastive:
  """SimCLR's NT-Xent on two augmented views of each real image, through a projection head on D."""
  weight: float = options.field(1.0, "In D's loss.", ">= 0")
  temperature: float = options.field(0.2, "NT-Xent's temperature.", "> 0")
  projection_dim: int = options.field(128, "Width of the projection head's output.", "> 0")


def projection_head(x_BxF, logits_BxK, features, *, dense, act, dtype, projection_dim: int):
  """SimCLR's projection (as in ContraD, Jeong & Shin 2021): `projection`, `B x projection_dim`."""
  del dense
  h = act(nn.Dense(2 * projection_dim, dtype=dtype, name="projection_hidden")(x_BxF))
  features["projection"] = nn.Dense(projection_dim, dtype=dtype, name="projection")(h).astype(jnp.float32)
  return logits_BxK


BLOCKS = {"contrastive": Contrastive}
HEADS = (Head(projection_head, block="contrastive", options=("projection_dim",)),)
TERMS = (Term("d_contrastive", contrastive_term, inputs=("view0", "view1"), block="contrastive", weight="weight",
              options=("temperature",)),)
