"""The semi-supervised K+1 discriminator (Salimans et al. 2016): D's last layer gives K class
logits and its real/fake logit is their logsumexp (a generated image is class K+1, whose
logit is fixed at 0; `models.heads`). D learns the labelled subset's classes beside the
real/fake loss; G matches D's features on real images instead of fooling it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gan_jax import options
from gan_jax.terms.core import Head, Judged, Term, classification_loss, mutual_information_loss


def feature_matching(real_features_BxF: jax.Array, fake_features_BxF: jax.Array) -> jax.Array:
  """Squared distance between the batch means of a discriminator layer on real and on
  generated images, averaged over features."""
  return jnp.mean((real_features_BxF.mean(0) - fake_features_BxF.mean(0)) ** 2)


def supervised_term(d: Judged):
  """Cross-entropy of D's classes on the labelled batch."""
  loss, acc = classification_loss(d.feature("labelled", "class_logits"), d.batch["labels"])
  return loss, {"supervised_acc": acc}


def entropy_term(d: Judged):
  """Bad GAN's conditional entropy (Dai et al. 2017): the mean entropy of D's class
  predictions on the real batch, minimised."""
  _, entropy, _ = mutual_information_loss(d.feature("real", "class_logits"))
  return entropy, {}


def feature_matching_term(d: Judged):
  """G's loss: D's `pre_logits` on generated images against the last real batch's."""
  return feature_matching(d.feature("real", "pre_logits"), d.feature("fake", "pre_logits")), {}


@dataclasses.dataclass(frozen=True)
class KPlus1:
  """The K+1 semi-supervised GAN: D classifies the labelled subset, and G matches D's features."""
  labels_per_class: int = options.field(10, "Labelled training images per class, chosen by config.seed.", "> 0")
  num_classes: int = options.field(10, "K.", ">= 2")
  supervised_weight: float = options.field(1.0, "Of D's cross-entropy on the labelled batch.", ">= 0")


@dataclasses.dataclass(frozen=True)
class Entropy:
  """Bad GAN's conditional entropy of D's classes on real images, minimised."""
  weight: float = options.field(1.0, "In D's loss.", ">= 0")


def class_head(x_BxF, logits_BxK, features, *, dense, act, dtype):
  """The K+1 classifier (Salimans et al. 2016): D's final layer gives K `class_logits`, and the
  real/fake logit is their logsumexp (the fake class's logit fixed at 0)."""
  del x_BxF, dense, act, dtype
  features["class_logits"] = logits_BxK
  return jax.nn.logsumexp(logits_BxK, axis=-1, keepdims=True)


BLOCKS = {"kplus1": KPlus1, "kplus1.entropy": Entropy}
HEADS = (Head(class_head, block="kplus1", outputs="num_classes"),)
TERMS = (
    Term("d_supervised", supervised_term, inputs=("labelled",), block="kplus1", weight="supervised_weight"),
    Term("d_class_entropy", entropy_term, inputs=("real",), block="kplus1.entropy", weight="weight"),
    # In place of G's adversarial term (`adversarial.TERMS`).
    Term("g_feature_matching", feature_matching_term, inputs=("real", "fake"), block="kplus1", weight=1.0),
)
