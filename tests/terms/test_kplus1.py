"""The K+1 GAN's terms: the supervised cross-entropy, Bad GAN's entropy and feature matching."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import discriminator, judged
from gan_jax.terms import adversarial
from gan_jax.terms import kplus1


def test_k_plus_one_logit_is_the_logsumexp_of_the_class_logits():
  d = discriminator(blocks={"kplus1": dict(num_classes=3)})
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 28, 28, 1), minval=-1, maxval=1)
  variables = d.init(jax.random.PRNGKey(1), x)
  logits, features = d.apply(variables, x)
  assert features["class_logits"].shape == (5, 3)
  np.testing.assert_allclose(logits, jax.nn.logsumexp(features["class_logits"], axis=-1), rtol=1e-6)
  # With class logits l, D(x) = sum(exp l) / (sum(exp l) + 1): the non-saturating loss of
  # a real image with l = (0, 0, 0) is -log(3 / 4).
  np.testing.assert_allclose(adversarial.non_saturating_discriminator(jnp.log(jnp.array([3.0])), jnp.array([-30.0])),
                             -np.log(0.75), rtol=1e-6)


def test_supervised_and_entropy_terms_read_the_labelled_and_the_real_batch():
  classes = jnp.array([[2.0, 0.0], [0.0, 0.0]])
  d = judged({"real": {"logits": jnp.zeros(2), "class_logits": jnp.log(jnp.array([[0.5, 0.5], [1.0, 1e-30]]))},
              "labelled": {"logits": jnp.zeros(2), "class_logits": classes}}, labels=jnp.array([0, 1]))
  loss, metrics = kplus1.supervised_term(d)
  np.testing.assert_allclose(loss, (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2, rtol=1e-6)
  assert float(metrics["supervised_acc"]) == 0.5
  loss, metrics = kplus1.entropy_term(d)  # The mean of log 2 and 0 nats.
  np.testing.assert_allclose(loss, np.log(2) / 2, rtol=1e-5, atol=1e-6)


def test_feature_matching_compares_the_batch_means_of_pre_logits():
  # Batch means (2, 3) and (0, 1): mean over features of the squared difference, ((2)^2 + (2)^2) / 2.
  np.testing.assert_allclose(kplus1.feature_matching(jnp.array([[1.0, 2.0], [3.0, 4.0]]),
                                                     jnp.array([[0.0, 0.0], [0.0, 2.0]])), 4.0)
  d = judged({"fake": {"logits": jnp.zeros(2), "pre_logits": jnp.array([[0.0, 0.0], [0.0, 2.0]])},
              "real": {"logits": jnp.zeros(2), "pre_logits": jnp.array([[1.0, 2.0], [3.0, 4.0]])}})
  loss, metrics = kplus1.feature_matching_term(d)
  np.testing.assert_allclose(loss, 4.0)
