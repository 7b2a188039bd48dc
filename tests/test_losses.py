import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses

REAL = jnp.array([2.0, 0.5])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
  return math.log1p(math.exp(x))


def test_non_saturating_matches_hand_values():
  d = losses.non_saturating_discriminator(REAL, FAKE)
  # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f).
  expected = (softplus(-2.0) + softplus(-0.5)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
  np.testing.assert_allclose(d, expected, rtol=1e-6)
  np.testing.assert_allclose(losses.non_saturating_generator(FAKE),
                             (softplus(-0.5) + softplus(3.0)) / 2, rtol=1e-6)


def test_hinge_matches_hand_values():
  # real: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fake: relu(1.5)=1.5, relu(-2)=0 -> 0.75.
  np.testing.assert_allclose(losses.hinge_discriminator(REAL, FAKE), 1.0, rtol=1e-6)
  np.testing.assert_allclose(losses.hinge_generator(FAKE), 1.25, rtol=1e-6)


def test_wasserstein_matches_hand_values():
  np.testing.assert_allclose(losses.wasserstein_discriminator(REAL, FAKE), -1.25 - 1.25, rtol=1e-6)
  np.testing.assert_allclose(losses.wasserstein_generator(FAKE), 1.25, rtol=1e-6)


def test_gradient_penalty_of_linear_critic():
  # D(x) = <w, x> has gradient w at every point, so the penalty is (||w|| - 1)^2 = (5 - 1)^2.
  w = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(3.0).at[0, 1, 1, 0].set(4.0)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real, fake = jnp.ones((3, 2, 2, 1)), -jnp.ones((3, 2, 2, 1))
  from jax import random
  np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, random.PRNGKey(0)), 16.0, rtol=1e-5)


def test_unknown_loss_names_the_field():
  with pytest.raises(ValueError, match=r"config.loss='hinj'.*allowed: non_saturating, hinge, wasserstein"):
    losses.get_loss("hinj")


def test_r1_penalty_of_a_linear_discriminator_is_the_squared_weight_norm():
  w = jnp.arange(12.0).reshape(2, 2, 3) / 10
  discriminate = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5  # grad_x D(x) = w for every image
  real = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 3))
  np.testing.assert_allclose(losses.r1_penalty(discriminate, real), jnp.sum(w ** 2), rtol=1e-6)


def test_r1_step_reports_the_penalty():
  from conftest import tiny_config
  from gan_jax import training
  config = tiny_config(r1_gamma=10.0)
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  _, metrics = jax.jit(lambda s, r: training.train_step(s, r, gan=gan, r1_gamma=10.0))(state, real)
  assert float(metrics["r1"]) > 0


def test_pseudo_label_loss_keeps_only_confident_weak_predictions():
  # Row 0's weak view is confident (p(class 1) = e^5 / (e^5 + 2) > 0.95); row 1's is uniform.
  weak = jnp.array([[0.0, 5.0, 0.0], [1.0, 1.0, 1.0]])
  strong = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 9.0]])
  loss, kept = losses.pseudo_label_loss(weak, strong, threshold=0.95)
  # Row 0 is taught class 1: -log softmax([1, 2, 3])[1]; row 1 adds nothing but counts in the mean.
  expected = -(2.0 - math.log(math.exp(1) + math.exp(2) + math.exp(3))) / 2
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(kept, 0.5)
  # The targets carry no gradient: only the strong view's logits are trained.
  grad_weak, grad_strong = jax.grad(lambda w, s: losses.pseudo_label_loss(w, s, 0.95)[0], argnums=(0, 1))(weak, strong)
  np.testing.assert_array_equal(grad_weak, 0.0)
  assert np.abs(grad_strong[0]).sum() > 0 and np.all(grad_strong[1] == 0)
  # Threshold 0 keeps every row, the uniform one taught its first class (argmax of a tie).
  np.testing.assert_allclose(losses.pseudo_label_loss(weak, strong, 0.0)[1], 1.0)
