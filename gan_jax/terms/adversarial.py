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
from gan_jax.terms.core import Head, Judged, Term


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


def discriminator_term(d: Judged, *, loss: str, detach: bool = False):
  """D's real/fake loss on the (augmented) real and generated batches; metrics: their mean
  logits and D's accuracy, the share of both batches on the right side of logit 0 (0.5: D is
  at chance and learns nothing from the game, whatever its loss says). With `detach`, the
  logits of the stopped representation (`detached_head`): the same values, whose gradient
  reaches the real/fake layer only."""
  if detach:
    real_B, fake_B = d.feature("real", "detached_logits"), d.feature("fake", "detached_logits")
  else:
    real_B, fake_B = d.logit("real"), d.logit("fake")
  accuracy = 0.5 * ((real_B > 0).mean() + (fake_B < 0).mean())
  return LOSSES[loss].discriminator(real_B, fake_B), {"real": real_B.mean(), "fake": fake_B.mean(),
                                                      "accuracy": accuracy}


def generator_term(d: Judged, *, loss: str):
  """G's loss on D's logits of its (augmented) images."""
  return LOSSES[loss].generator(d.logit("fake")), {}


def detached_head(x_BxF, logits_BxK, features, *, dense, act, dtype):
  """ContraD's real/fake head (Jeong & Shin 2021): the real/fake layer again, on `pre_logits`
  with its gradient stopped: `detached_logits`, `B`. G's loss still reads the logits through
  the whole of D."""
  del act, dtype
  features["detached_logits"] = dense(logits_BxK.shape[-1], "logits")(jax.lax.stop_gradient(x_BxF)).astype(
      jnp.float32)[:, 0]
  return logits_BxK


@dataclasses.dataclass(frozen=True)
class Adversarial:
  """The adversarial game, on in every recipe (its block is in configs/base.py)."""
  loss: str = options.field("non_saturating", "The loss of both players.", tuple(LOSSES))
  weight: float = options.field(1.0, "In D's loss (0: the K+1 GAN's supervised-only control).", ">= 0")
  detach: bool = options.field(False, "ContraD: D's real/fake loss trains its last layer only, on the "
                               "representation with its gradient stopped; the other D terms train the representation.",
                               (False, True))


def check(config) -> None:
  if config.adversarial.detach and config.get("kplus1") is not None:
    raise ValueError("config.adversarial.detach=True: the K+1 classifier's real/fake logit is its class logits; "
                     "allowed with kplus1: False")


BLOCKS = {"adversarial": Adversarial}
HEADS = (Head(detached_head, block="adversarial", requires=("detach",)),)
TERMS = (
    Term("d_adversarial", discriminator_term, inputs=("real", "fake"), block="adversarial", weight="weight",
         options=("loss", "detach")),
    # The K+1 GAN's G matches D's features instead of fooling it (`kplus1.feature_matching_term`).
    Term("g_adversarial", generator_term, inputs=("fake",), block="adversarial", weight=1.0, options=("loss",),
         unless="kplus1"),
)
