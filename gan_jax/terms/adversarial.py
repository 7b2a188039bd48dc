"""The adversarial terms: D tells real from generated images, G makes D call its images real.

Each loss is a pair `(discriminator_loss(real_B, fake_B), generator_loss(fake_B))` of scalar
means over the batch, chosen by name with `config.adversarial.loss`:

  * `non_saturating`: the DCGAN loss (Goodfellow et al. 2014, with the generator's
    non-saturating form -log D(G(z))), written with softplus for stability.
  * `hinge`: the SNGAN / SAGAN hinge loss.
  * `wasserstein`: the WGAN critic loss; use it with `config.gradient_penalty` (WGAN-GP).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gan_jax import options
from gan_jax.terms.core import Judged, Term


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


def discriminator_term(d: Judged, *, loss: str):
  """D's real/fake loss on the (augmented) real and generated batches; metrics: their mean logits."""
  real_B, fake_B = d.logit("real"), d.logit("fake")
  return LOSSES[loss].discriminator(real_B, fake_B), {"real": real_B.mean(), "fake": fake_B.mean()}


def generator_term(d: Judged, *, loss: str):
  """G's loss on D's logits of its (augmented) images."""
  return LOSSES[loss].generator(d.logit("fake")), {}


@dataclasses.dataclass(frozen=True)
class Adversarial:
  """The adversarial game, on in every recipe (its block is in configs/base.py)."""
  loss: str = options.field("non_saturating", "The loss of both players.", tuple(LOSSES))
  weight: float = options.field(1.0, "In D's loss (0: the K+1 GAN's supervised-only control).", ">= 0")


BLOCKS = {"adversarial": Adversarial}
TERMS = (
    Term("d_adversarial", discriminator_term, inputs=("real", "fake"), block="adversarial", weight="weight",
         options=("loss",)),
    # The K+1 GAN's G matches D's features instead of fooling it (`kplus1.feature_matching_term`).
    Term("g_adversarial", generator_term, inputs=("fake",), block="adversarial", weight=1.0, options=("loss",),
         unless="kplus1"),
)
