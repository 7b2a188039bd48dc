"""Adversarial losses and regularisers as pure functions of discriminator logits.

Each loss is a pair `(discriminator_loss(real_B, fake_B), generator_loss(fake_B))` of
scalar means over the batch, chosen by name with `config.loss`:

  * `non_saturating`: the DCGAN loss (Goodfellow et al. 2014, with the generator's
    non-saturating form -log D(G(z))), written with softplus for stability.
  * `hinge`: the SNGAN / SAGAN hinge loss.
  * `wasserstein`: the WGAN critic loss; use it with `gradient_penalty` (WGAN-GP).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class AdversarialLoss(NamedTuple):
  discriminator: Callable[[jax.Array, jax.Array], jax.Array]
  generator: Callable[[jax.Array], jax.Array]


def non_saturating_discriminator(real_B, fake_B):
  """-log sigmoid(real) - log(1 - sigmoid(fake)), batch mean."""
  return jnp.mean(jax.nn.softplus(-real_B)) + jnp.mean(jax.nn.softplus(fake_B))


def non_saturating_generator(fake_B):
  """-log sigmoid(fake), batch mean."""
  return jnp.mean(jax.nn.softplus(-fake_B))


def hinge_discriminator(real_B, fake_B):
  """mean(relu(1 - real)) + mean(relu(1 + fake))."""
  return jnp.mean(jax.nn.relu(1.0 - real_B)) + jnp.mean(jax.nn.relu(1.0 + fake_B))


def hinge_generator(fake_B):
  return -jnp.mean(fake_B)


def wasserstein_discriminator(real_B, fake_B):
  return jnp.mean(fake_B) - jnp.mean(real_B)


def wasserstein_generator(fake_B):
  return -jnp.mean(fake_B)


LOSSES = {
    "non_saturating": AdversarialLoss(non_saturating_discriminator, non_saturating_generator),
    "hinge": AdversarialLoss(hinge_discriminator, hinge_generator),
    "wasserstein": AdversarialLoss(wasserstein_discriminator, wasserstein_generator),
}


def get_loss(name: str) -> AdversarialLoss:
  if name not in LOSSES:
    raise ValueError(f"config.loss={name!r} is not a loss; allowed: {', '.join(LOSSES)}")
  return LOSSES[name]


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

  Multiply by gamma / 2 outside (`config.r1_gamma`); `discriminate` maps images to logits.
  """
  grads = jax.grad(lambda x: jnp.sum(discriminate(x)))(real_BxHxWxC)
  return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1))


def rotate90(images_BxHxWxC: jax.Array, quarter_turns_B: jax.Array) -> jax.Array:
  """Each square image rotated counter-clockwise by its own number of quarter turns (0-3)."""
  turns = jnp.stack([jnp.rot90(images_BxHxWxC, k, axes=(1, 2)) for k in range(4)], axis=1)
  return jnp.take_along_axis(turns, quarter_turns_B[:, None, None, None, None], axis=1)[:, 0]


def classification_loss(logits_BxK: jax.Array, labels_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Softmax cross-entropy against integer labels. Returns (mean loss, accuracy).

  The loss of every classifying head here: SS-GAN's rotation head (labels: the quarter
  turns applied), InfoGAN's categorical code (labels: the code each fake was made from;
  the variational lower bound of the mutual information, less the constant H(c)) and the
  K+1 discriminator's supervised term (labels: the labelled subset's classes).
  """
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, labels_B).mean()
  return loss, (logits_BxK.argmax(-1) == labels_B).mean()


rotation_loss = classification_loss  # SS-GAN (Chen et al. 2019): predict each image's rotation.


def continuous_code_loss(mean_BxC: jax.Array, codes_BxC: jax.Array) -> jax.Array:
  """InfoGAN's term for continuous codes: the negative log-likelihood of the codes under
  Q's unit-variance Gaussian (constant dropped), summed over codes, batch mean."""
  return 0.5 * jnp.mean(jnp.sum((mean_BxC - codes_BxC) ** 2, axis=-1))


def mutual_information_loss(logits_BxK: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Minus the mutual information between images and the clusters a classifier gives
  them, estimated on a batch (Krause et al. 2010, "regularized information maximization"):
  mean_x H(p(c | x)) - H(mean_x p(c | x)). Low when each image's prediction is confident
  and the batch uses every cluster equally. Returns (loss, conditional H, marginal H), in nats."""
  log_p = jax.nn.log_softmax(logits_BxK)
  conditional = -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
  log_marginal = jax.nn.logsumexp(log_p, axis=0) - jnp.log(logits_BxK.shape[0])
  marginal = -jnp.sum(jnp.exp(log_marginal) * log_marginal)
  return conditional - marginal, conditional, marginal


def paired_mutual_information_loss(logits1_BxK: jax.Array, logits2_BxK: jax.Array) -> jax.Array:
  """Minus the mutual information between the clusters a classifier gives two views of the
  same images (IIC, Ji et al. 2019): the joint P(c, c') is the batch mean of the outer
  product of the two predictions, symmetrised; I = sum P log(P / (P(c) P(c'))). Maximal
  (log K) when the views always agree and every cluster is used equally; in nats."""
  p1, p2 = jax.nn.softmax(logits1_BxK), jax.nn.softmax(logits2_BxK)
  joint = p1.T @ p2 / logits1_BxK.shape[0]
  joint = ((joint + joint.T) / 2).clip(1e-12)
  marginal_i, marginal_j = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
  return -jnp.sum(joint * (jnp.log(joint) - jnp.log(marginal_i) - jnp.log(marginal_j)))


def neighbour_agreement_loss(logits_BxK: jax.Array, neighbour_logits_BxK: jax.Array, embeddings_BxP: jax.Array,
                             bank: tuple[jax.Array, jax.Array] | None = None) -> tuple[jax.Array, jax.Array]:
  """SCAN's consistency term (Van Gansbeke et al. 2020), with neighbours mined in the batch:
  image i's prediction must agree with that of its nearest other image j in an embedding
  (cosine; the embedding gets no gradient): -mean_i log <p(c | x_i), p'(c | x_j)>, where p'
  comes from `neighbour_logits` (another view of the same images, or the same logits).
  Both predictions get gradients, as in SCAN. Pair it with a marginal-entropy term, else
  one cluster for everything minimises it.

  `bank`: (embeddings `M x P`, log-probabilities `M x K`) of M earlier images, also
  candidates for j (their predictions are constants); all-zero embeddings are empty slots.
  Returns (loss, the index j of each image: < B in the batch, B + m for bank entry m)."""
  e = jax.lax.stop_gradient(embeddings_BxP)
  e = e / jnp.linalg.norm(e, axis=1, keepdims=True).clip(1e-6)
  similarity = jnp.where(jnp.eye(e.shape[0], dtype=bool), -jnp.inf, e @ e.T)
  candidates = jax.nn.log_softmax(neighbour_logits_BxK)
  if bank is not None:
    bank_e, bank_log_p = jax.lax.stop_gradient(bank)
    norm = jnp.linalg.norm(bank_e, axis=1)
    bank_similarity = jnp.where(norm > 0, e @ bank_e.T / norm.clip(1e-6), -jnp.inf)
    similarity = jnp.concatenate([similarity, bank_similarity], axis=1)
    candidates = jnp.concatenate([candidates, bank_log_p])
  neighbour = similarity.argmax(-1)
  return _disagreement(jax.nn.log_softmax(logits_BxK), candidates[neighbour]), neighbour


def over_heads(loss_fn, *logits):
  """`loss_fn` of `B x K` logits on each head of `B x H x K` logits (axis 1), its outputs
  (an array or a tuple of them) averaged over the heads; `B x K` logits go straight to it.
  The heads of a multi-head clustering (SCAN, IIC) each take the loss, and it is their mean."""
  if logits[0].ndim == 2:
    return loss_fn(*logits)
  return jax.tree.map(lambda v: v.mean(0), jax.vmap(loss_fn, in_axes=1)(*logits))


def neighbour_consistency_loss(logits_BxK: jax.Array, neighbour_logits_BxK: jax.Array) -> jax.Array:
  """SCAN's consistency term for given pairs (Van Gansbeke et al. 2020): row i of
  `neighbour_logits` is Q's prediction on a neighbour of image i (mined beforehand);
  -mean_i log <p(c | x_i), p(c | x_nbr(i))>, both sides with gradients. Pair it with a
  marginal-entropy term, else one cluster for everything minimises it."""
  return _disagreement(jax.nn.log_softmax(logits_BxK), jax.nn.log_softmax(neighbour_logits_BxK))


def _disagreement(log_p_BxK: jax.Array, log_q_BxK: jax.Array) -> jax.Array:
  """-mean_i log <p_i, q_i>, from log-probabilities (stable where both are confident)."""
  return -jnp.mean(jax.nn.logsumexp(log_p_BxK + log_q_BxK, axis=-1))


def pseudo_label_loss(weak_logits_BxK: jax.Array, strong_logits_BxK: jax.Array,
                      threshold: float) -> tuple[jax.Array, jax.Array]:
  """FixMatch's consistency term (Sohn et al. 2020): each image's prediction on a strongly
  augmented view is trained towards the class its weakly augmented view predicts, where
  that prediction's confidence is at least `threshold`; the targets carry no gradient.
  Summed over the kept images and divided by the whole batch, as in FixMatch.
  Returns (loss, the fraction of images kept)."""
  p_weak = jax.nn.softmax(jax.lax.stop_gradient(weak_logits_BxK))
  keep = (p_weak.max(-1) >= threshold).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(strong_logits_BxK, p_weak.argmax(-1))
  return jnp.mean(ce * keep), keep.mean()


def feature_matching(real_features_BxF: jax.Array, fake_features_BxF: jax.Array) -> jax.Array:
  """The generator loss of Salimans et al. 2016: squared distance between the batch means
  of a discriminator layer on real and on generated images, averaged over features."""
  return jnp.mean((real_features_BxF.mean(0) - fake_features_BxF.mean(0)) ** 2)


def nt_xent(z1_BxP: jax.Array, z2_BxP: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
  """SimCLR's contrastive loss (Chen et al. 2020) between two views of a batch: each
  embedding must pick its other view among the 2B - 1 others. Returns (mean loss, accuracy)."""
  z = jnp.concatenate([z1_BxP, z2_BxP])
  z = z / jnp.linalg.norm(z, axis=1, keepdims=True).clip(1e-6)
  b = z1_BxP.shape[0]
  logits = (z @ z.T) / temperature
  logits = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, logits)
  targets = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  return loss, (logits.argmax(-1) == targets).mean()
