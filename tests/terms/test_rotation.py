"""SS-GAN's rotation term."""

import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import rotation


def test_rotate90_turns_each_image_by_its_own_quarter_turns():
  x = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 4, 4, 1)
  rotated = rotation.rotate90(x, jnp.array([1, 3]))
  np.testing.assert_array_equal(rotated[0], jnp.rot90(x[0], 1))
  np.testing.assert_array_equal(rotated[1], jnp.rot90(x[1], 3))


def test_rotation_term_is_the_cross_entropy_of_the_head_on_the_rotated_batch():
  turns = jnp.array([1, 3])
  head = jnp.array([[0.0, 2.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # Right, then wrong.
  d = judged({"real": {"logits": jnp.zeros(2), "rotation_logits": jnp.full((2, 4), jnp.nan)},
              "rotated": {"logits": jnp.zeros(2), "rotation_logits": head}}, turns=turns)
  loss, metrics = rotation.rotation_term(d)
  expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 3)), -np.log(1 / (np.e + 3))])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert float(metrics["rotation_acc"]) == 0.5
