"""InfoGAN's terms (Chen et al. 2016) and SCAN's neighbour term (Van Gansbeke et al. 2020), on
the Q head that D carries.

InfoGAN: G's input holds a categorical code and continuous codes, and Q must recover them
from the generated images; the term joins both players' losses. SCAN: Q's clusters of real
images must agree between each image and one of its nearest training images (mined by D's
embedding, `neighbours`), against the entropy of the batch's mean prediction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gan_jax.terms.core import Judged, classification_loss, code_logits, mutual_information_loss, over_heads


def continuous_code_loss(mean_BxC: jax.Array, codes_BxC: jax.Array) -> jax.Array:
  """InfoGAN's term for continuous codes: the negative log-likelihood of the codes under
  Q's unit-variance Gaussian (constant dropped), summed over codes, batch mean."""
  return 0.5 * jnp.mean(jnp.sum((mean_BxC - codes_BxC) ** 2, axis=-1))


def neighbour_consistency_loss(logits_BxK: jax.Array, neighbour_logits_BxK: jax.Array) -> jax.Array:
  """SCAN's consistency term for given pairs: row i of `neighbour_logits` is Q's prediction
  on a neighbour of image i (mined beforehand); -mean_i log <p(c | x_i), p(c | x_nbr(i))>,
  both sides with gradients (stable where both are confident). Pair it with a
  marginal-entropy term, else one cluster for everything minimises it."""
  log_p, log_q = jax.nn.log_softmax(logits_BxK), jax.nn.log_softmax(neighbour_logits_BxK)
  return -jnp.mean(jax.nn.logsumexp(log_p + log_q, axis=-1))


def categorical_term(d: Judged):
  """Cross-entropy of Q (every head) on the generated images against their categorical codes."""
  q = code_logits(d.features)[d.parts["fake"]]
  loss, acc = over_heads(lambda logits: classification_loss(logits, d.batch["categories"]), q)
  return loss, {"code_loss": loss, "code_acc": acc}


def continuous_term(d: Judged):
  """Q's Gaussian error in recovering the generated images' continuous codes."""
  loss = continuous_code_loss(d.feature("fake", "code_mean"), d.batch["continuous"])
  return loss, {"code_continuous_loss": loss}


def neighbours_term(d: Judged, *, entropy_weight: float):
  """SCAN: view 0 of each real image against an augmented view of one of its mined
  neighbours, less `entropy_weight` x the entropy of view 0's mean prediction."""
  q = code_logits(d.features)
  agreement = over_heads(neighbour_consistency_loss, q[d.parts["view0"]], q[d.parts["neighbour"]])
  _, _, marginal = over_heads(mutual_information_loss, q[d.parts["view0"]])
  return agreement - entropy_weight * marginal, {"code_neighbour_loss": agreement,
                                                 "code_neighbour_marginal_entropy": marginal}
