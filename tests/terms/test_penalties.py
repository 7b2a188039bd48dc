"""WGAN-GP and R1 against the penalties of linear discriminators."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import penalties


def test_gradient_penalty_of_linear_critic():
  # D(x) = <w, x> has gradient w at every point, so the penalty is (||w|| - 1)^2 = (5 - 1)^2.
  w = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(3.0).at[0, 1, 1, 0].set(4.0)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real, fake = jnp.ones((3, 2, 2, 1)), -jnp.ones((3, 2, 2, 1))
  np.testing.assert_allclose(penalties.gradient_penalty(critic, real, fake, jax.random.PRNGKey(0)), 16.0, rtol=1e-5)
  d = judged({"real": {"logits": jnp.zeros(3)}}, real=real, fake=fake, key=jax.random.PRNGKey(0))
  loss, metrics = penalties.gradient_penalty_term(d._replace(discriminate=critic))
  assert metrics == {}
  np.testing.assert_allclose(loss, 16.0, rtol=1e-5)


def test_r1_penalty_of_a_linear_discriminator_is_the_squared_weight_norm():
  w = jnp.arange(12.0).reshape(2, 2, 3) / 10
  discriminate = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5  # grad_x D(x) = w for every image
  real = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 3))
  np.testing.assert_allclose(penalties.r1_penalty(discriminate, real), jnp.sum(w ** 2), rtol=1e-6)
  # The term reads the real batch as D judged it.
  d = judged({"fake": {"logits": jnp.zeros(2), "images": jnp.full((2, 2, 2, 3), jnp.nan)},
              "real": {"logits": jnp.zeros(4), "images": real}})
  loss, metrics = penalties.r1_term(d._replace(discriminate=discriminate))
  assert metrics == {}
  np.testing.assert_allclose(loss, jnp.sum(w ** 2), rtol=1e-6)
