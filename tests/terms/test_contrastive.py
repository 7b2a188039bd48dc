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
