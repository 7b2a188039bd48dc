"""The adversarial losses and terms against hand-computed values."""

import math

import jax
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


def test_terms_read_the_real_and_fake_batches_and_report_their_mean_logits_and_accuracy():
  d = judged({"real": {"logits": REAL}, "fake": {"logits": FAKE}})
  loss, metrics = adversarial.discriminator_term(d, loss="hinge")
  np.testing.assert_allclose(loss, 1.0, rtol=1e-6)
  np.testing.assert_allclose([metrics["real"], metrics["fake"]], [1.25, -1.25])
  # Both real logits > 0, one of the two fake logits < 0: (1 + 0.5) / 2.
  np.testing.assert_allclose(metrics["accuracy"], 0.75)
  loss, metrics = adversarial.generator_term(d, loss="hinge")
  np.testing.assert_allclose(loss, 1.25, rtol=1e-6)
  assert metrics == {}



def test_detached_head_trains_the_real_fake_layer_alone_and_lets_g_read_through_d():
  from conftest import discriminator
  d = discriminator(blocks={"adversarial": dict(detach=True)})
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 28, 28, 1))
  variables = d.init(jax.random.PRNGKey(1), x)
  logits, features = d.apply(variables, x)
  np.testing.assert_allclose(features["detached_logits"], logits, rtol=1e-6)  # The same layer, the same values.
  assert set(variables["params"]) == set(discriminator().init(jax.random.PRNGKey(1), x)["params"])  # No new layer.

  def d_loss(params):
    _, f = d.apply({"params": params}, x)
    return adversarial.discriminator_term(judged({"real": {"logits": f["detached_logits"]},
                                                  "fake": {"logits": -f["detached_logits"]}}), loss="non_saturating")[0]

  grads = jax.grad(d_loss)(variables["params"])
  assert {name for name, g in grads.items() if any(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(g))} == {"logits"}
  image_grad = jax.grad(lambda x: d.apply(variables, x)[0].sum())(x)  # What G's loss reads: through all of D.
  assert np.abs(image_grad).max() > 0
