"""The adversarial losses and terms against hand-computed values."""

import math

import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import adversarial

REAL = jnp.array([2.0, 0.5])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
  return math.log1p(math.exp(x))


def test_non_saturating_matches_hand_values():
  d = adversarial.non_saturating_discriminator(REAL, FAKE)
  # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f).
  expected = (softplus(-2.0) + softplus(-0.5)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
  np.testing.assert_allclose(d, expected, rtol=1e-6)
  np.testing.assert_allclose(adversarial.non_saturating_generator(FAKE), (softplus(-0.5) + softplus(3.0)) / 2,
                             rtol=1e-6)


def test_hinge_matches_hand_values():
  # real: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fake: relu(1.5)=1.5, relu(-2)=0 -> 0.75.
  np.testing.assert_allclose(adversarial.hinge_discriminator(REAL, FAKE), 1.0, rtol=1e-6)
  np.testing.assert_allclose(adversarial.hinge_generator(FAKE), 1.25, rtol=1e-6)


def test_wasserstein_matches_hand_values():
  np.testing.assert_allclose(adversarial.wasserstein_discriminator(REAL, FAKE), -1.25 - 1.25, rtol=1e-6)
  np.testing.assert_allclose(adversarial.wasserstein_generator(FAKE), 1.25, rtol=1e-6)


def test_terms_read_the_real_and_fake_batches_and_report_their_mean_logits():
  d = judged({"real": {"logits": REAL}, "fake": {"logits": FAKE}})
  loss, metrics = adversarial.discriminator_term(d, loss="hinge")
  np.testing.assert_allclose(loss, 1.0, rtol=1e-6)
  np.testing.assert_allclose([metrics["real"], metrics["fake"]], [1.25, -1.25])
  loss, metrics = adversarial.generator_term(d, loss="hinge")
  np.testing.assert_allclose(loss, 1.25, rtol=1e-6)
  assert metrics == {}

