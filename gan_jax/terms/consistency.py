"""FixMatch's consistency term (Sohn et al. 2020) on a classifying head of D: InfoGAN's Q
(SCAN's self-labelling step) or the K+1 discriminator's classes. No label is read: the
targets are the head's own confident predictions on a weakly augmented view."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from gan_jax import options
from gan_jax.terms.core import Judged, Term, code_logits, over_heads


def pseudo_label_loss(weak_logits_BxK: jax.Array, strong_logits_BxK: jax.Array,
                      threshold: float) -> tuple[jax.Array, jax.Array]:
  """Each image's prediction on a strongly augmented view is trained towards the class its
  weakly augmented view predicts, where that prediction's confidence is at least
  `threshold`; the targets carry no gradient. Summed over the kept images and divided by
  the whole batch, as in FixMatch. Returns (loss, the fraction of images kept)."""
  p_weak = jax.nn.softmax(jax.lax.stop_gradient(weak_logits_BxK))
  keep = (p_weak.max(-1) >= threshold).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(strong_logits_BxK, p_weak.argmax(-1))
  return jnp.mean(ce * keep), keep.mean()


def consistency_term(d: Judged, *, head: str, threshold: float, start: int):
  """The head's prediction on view 0 (translated and cut out) taught the class of the
  translated-only view ("weak"); 0 before step `start`."""
  logits = code_logits(d.features) if head == "code" else d.features[f"{head}_logits"]
  loss, kept = over_heads(lambda weak, strong: pseudo_label_loss(weak, strong, threshold),
                          logits[d.parts["weak"]], logits[d.parts["view0"]])
  return (d.step >= start) * loss, {f"{head}_consistency_loss": loss, f"{head}_consistency_kept": kept}


@dataclasses.dataclass(frozen=True)
class Consistency:
  """FixMatch's self-labelling on a head (Q's clusters, or the K+1 classifier's classes)."""
  weight: float = options.field(1.0, "In D's loss.", ">= 0")
  threshold: float = options.field(0.95, "Confidence a weak view's prediction needs to become a target.", "[0, 1]")
  start: int = options.field(0, "The step from which the term counts.", ">= 0")


BLOCKS = {"infogan.consistency": Consistency, "kplus1.consistency": Consistency}
TERMS = (
    Term("d_code_consistency", consistency_term, inputs=("weak", "view0"), block="infogan.consistency",
         weight="weight", options=("threshold", "start"), constants={"head": "code"}),
    Term("d_class_consistency", consistency_term, inputs=("weak", "view0"), block="kplus1.consistency",
         weight="weight", options=("threshold", "start"), constants={"head": "class"}),
)
