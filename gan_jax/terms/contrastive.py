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


def fake_negatives_loss(real1_BxP: jax.Array, real2_BxP: jax.Array, fake_BxP: jax.Array,
                        temperature: float) -> tuple[jax.Array, jax.Array]:
  """ContraD's supervised contrastive loss with the generated images as one class (Jeong &
  Shin 2021, `supcon_fake`): each generated image's embedding must pick the other generated
  ones among the 3B - 1 others, the two views of the real batch being the negatives.
  Returns (mean loss, the share of generated images whose nearest other embedding is generated)."""
  z = jnp.concatenate([real1_BxP, real2_BxP, fake_BxP])
  z = z / jnp.linalg.norm(z, axis=1, keepdims=True).clip(1e-6)
  n, b = z.shape[0], fake_BxP.shape[0]
  self_ = jnp.eye(n, dtype=bool)[n - b:]
  logits = jnp.where(self_, -jnp.inf, (z[n - b:] @ z.T) / temperature)  # B anchors x 3B.
  positive = (jnp.arange(n) >= n - b)[None, :] & ~self_
  log_p = jax.nn.log_softmax(logits)
  loss = -jnp.sum(jnp.where(positive, log_p, 0.0), axis=1) / (b - 1)
  return loss.mean(), positive[jnp.arange(b), logits.argmax(-1)].mean()


def fake_negatives_term(d: Judged, *, temperature: float):
  """ContraD's term between D's second projection of the real batch's views 0 and 1 and of
  the generated batch."""
  loss, acc = fake_negatives_loss(d.feature("view0", "fake_projection"), d.feature("view1", "fake_projection"),
                                  d.feature("fake", "fake_projection"), temperature)
  return loss, {"fake_negatives_acc": acc}


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


@dataclasses.dataclass(frozen=True)
class FakeNegatives:
  """ContraD's supervised contrastive term: generated images are one class, whose embeddings
  (through a second projection head on D) must find each other among those of the real views."""
  weight: float = options.field(1.0, "In D's loss.", ">= 0")
  temperature: float = options.field(0.1, "Its softmax temperature (ContraD's 0.1).", "> 0")
  projection_dim: int = options.field(128, "Width of its projection head's output.", "> 0")


def _projection(x_BxF, name: str, projection_dim: int, act, dtype):
  h = act(nn.Dense(2 * projection_dim, dtype=dtype, name=f"{name}_hidden")(x_BxF))
  return nn.Dense(projection_dim, dtype=dtype, name=name)(h).astype(jnp.float32)


def projection_head(x_BxF, logits_BxK, features, *, dense, act, dtype, projection_dim: int):
  """SimCLR's projection (as in ContraD, Jeong & Shin 2021): `projection`, `B x projection_dim`."""
  del dense
  features["projection"] = _projection(x_BxF, "projection", projection_dim, act, dtype)
  return logits_BxK


def fake_projection_head(x_BxF, logits_BxK, features, *, dense, act, dtype, projection_dim: int):
  """ContraD's second projection, which the fake-negatives term reads: `fake_projection`."""
  del dense
  features["fake_projection"] = _projection(x_BxF, "fake_projection", projection_dim, act, dtype)
  return logits_BxK


def check(config) -> None:
  if (config.get("contrastive") or {}).get("fake_negatives") is not None and config.batch_size < 2:
    raise ValueError(f"config.batch_size={config.batch_size}: the fake-negatives term needs two generated images "
                     "a batch; allowed: >= 2")


BLOCKS = {"contrastive": Contrastive, "contrastive.fake_negatives": FakeNegatives}
HEADS = (Head(projection_head, block="contrastive", options=("projection_dim",)),
         Head(fake_projection_head, block="contrastive.fake_negatives", options=("projection_dim",)))
TERMS = (Term("d_contrastive", contrastive_term, inputs=("view0", "view1"), block="contrastive", weight="weight",
              options=("temperature",)),
         Term("d_fake_negatives", fake_negatives_term, inputs=("view0", "view1", "fake"),
              block="contrastive.fake_negatives", weight="weight", options=("temperature",)))
