"""SimCLR's NT-Xent."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import contrastive


def test_nt_xent_rewards_matching_views():
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
  matched, accuracy = contrastive.nt_xent(z, z + 0.01, temperature=0.1)
  shuffled, _ = contrastive.nt_xent(z, jnp.roll(z, 1, axis=0), temperature=0.1)
  assert float(accuracy) == 1.0 and float(matched) < float(shuffled)


def test_contrastive_term_pairs_view_0_with_view_1():
  # 2 pairs of orthogonal unit vectors: each row's positive has cosine 1, its two negatives 0,
  # so loss = -log(e^(1/t) / (e^(1/t) + 2)).
  z = jnp.eye(4)[:2]
  d = judged({"view0": {"logits": jnp.zeros(2), "projection": z}, "view1": {"logits": jnp.zeros(2), "projection": z}})
  loss, metrics = contrastive.contrastive_term(d, temperature=0.5)
  np.testing.assert_allclose(loss, -np.log(np.e**2 / (np.e**2 + 2)), rtol=1e-5)
  assert float(metrics["contrastive_acc"]) == 1.0


def test_fake_negatives_term_asks_each_generated_image_for_the_other_generated_ones():
  # Real views all [1, 0], fakes both [0, 1]: each fake's one positive (the other fake) has
  # cosine 1, its 4 negatives (the real views) 0, so at t = 1: -log(e / (e + 4)).
  real, fake = jnp.array([[1.0, 0.0]] * 2), jnp.array([[0.0, 1.0]] * 2)
  d = judged({name: {"logits": jnp.zeros(2), "fake_projection": z}
              for name, z in (("view0", real), ("view1", real), ("fake", fake))})
  loss, metrics = contrastive.fake_negatives_term(d, temperature=1.0)
  np.testing.assert_allclose(loss, -np.log(np.e / (np.e + 4)), rtol=1e-5)
  assert float(metrics["fake_negatives_acc"]) == 1.0
  # Fake 0 is nearer the real views (cosine 0.995) than fake 1 (-0.98): an error; fake 1 is
  # nearer fake 0 than the real views (-0.995): right.
  d = judged({name: {"logits": jnp.zeros(2), "fake_projection": z}
              for name, z in (("view0", real), ("view1", real), ("fake", jnp.array([[1.0, 0.1], [-1.0, 0.1]])))})
  assert float(contrastive.fake_negatives_term(d, temperature=1.0)[1]["fake_negatives_acc"]) == 0.5
