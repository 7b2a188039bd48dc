"""The semi-supervised K+1 discriminator (Salimans et al. 2016): D's last layer gives K class
logits and its real/fake logit is their logsumexp (a generated image is class K+1, whose
logit is fixed at 0; `models.heads`). D learns the labelled subset's classes beside the
real/fake loss; G matches D's features on real images instead of fooling it."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gan_jax.terms.core import Judged, classification_loss, mutual_information_loss


def feature_matching(real_features_BxF: jax.Array, fake_features_BxF: jax.Array) -> jax.Array:
  """Squared distance between the batch means of a discriminator layer on real and on
  generated images, averaged over features."""
  return jnp.mean((real_features_BxF.mean(0) - fake_features_BxF.mean(0)) ** 2)


def supervised_term(d: Judged):
  """Cross-entropy of D's classes on the labelled batch."""
  loss, acc = classification_loss(d.feature("labelled", "class_logits"), d.batch["labels"])
  return loss, {"supervised_loss": loss, "supervised_acc": acc}


def entropy_term(d: Judged):
  """Bad GAN's conditional entropy (Dai et al. 2017): the mean entropy of D's class
  predictions on the real batch, minimised."""
  _, entropy, _ = mutual_information_loss(d.feature("real", "class_logits"))
  return entropy, {"class_entropy": entropy}


def feature_matching_term(d: Judged):
  """G's loss: D's `pre_logits` on generated images against the last real batch's."""
  loss = feature_matching(d.feature("real", "pre_logits"), d.feature("fake", "pre_logits"))
  return loss, {"feature_matching": loss}
