"""Q's heads refitted on the frozen discriminator, and how evaluation picks among Q's heads."""

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import refit
from gan_jax.evaluation import metrics as metrics_lib
from gan_jax.evaluation import representation
from gan_jax.terms import infogan


def test_refit_heads_find_separated_clusters_and_fold_the_projection_into_their_first_layer():
  # Three well-separated clusters in 40 dimensions, each image's neighbours in its own.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 30)
  features = (rng.normal(size=(3, 40)) * 4)[labels] + rng.normal(size=(90, 40))
  neighbours = np.stack([rng.choice(np.flatnonzero((labels == y) & (np.arange(90) != i)), 5, replace=False)
                         for i, y in enumerate(labels)])
  act = infogan.REFIT_ACTIVATION
  dense, head_losses = refit.fit_heads(jax.random.key(0), jnp.asarray(features), jnp.asarray(neighbours),
                                       num_heads=2, hidden=16, categories=3, steps=300, batch_size=32,
                                       learning_rate=1e-2, entropy_weight=5.0, dim=6, act=act)
  assert dense["hidden"]["kernel"].shape == (2, 40, 16) and dense["output"]["kernel"].shape == (2, 16, 3)
  for h in range(2):
    logits = act(features @ dense["hidden"]["kernel"][h] + dense["hidden"]["bias"][h]) @ dense["output"]["kernel"][h] \
        + dense["output"]["bias"][h]
    # The returned layers read the features themselves: their loss is the one reported.
    loss = np.mean([refit.scan_loss(logits, logits[neighbours[:, j]], 5.0) for j in range(5)])
    np.testing.assert_allclose(loss, head_losses[h], rtol=1e-4)
    assert metrics_lib.cluster_accuracy(labels, np.asarray(logits).argmax(1)) == 1.0


def test_refit_heads_count_only_at_the_step_they_were_fitted():
  assert representation.refit_current({"step": 7, "code_refit_step": 7})
  assert not representation.refit_current({"step": 9, "code_refit_step": 7})  # Resumed and trained on.
  assert not representation.refit_current({"step": 0, "code_refit_step": -1})
  assert not representation.refit_current({"step": 7})


def test_select_code_head_picks_the_head_neighbours_agree_on():
  rng = np.random.default_rng(0)
  groups = np.repeat(np.arange(3), 30)
  embeddings = np.eye(3)[groups] + 0.05 * rng.normal(size=(90, 3))  # Three tight clusters.
  right = 20.0 * np.eye(3)[groups]  # Confident, and the neighbours' cluster.
  noisy = 20.0 * np.eye(3)[rng.integers(0, 3, 90)]  # Confident, balanced, blind to the neighbours.
  merged = 20.0 * np.eye(3)[np.minimum(groups, 1)]  # Agrees with neighbours, but uses 2 clusters.
  head, head_losses = representation.select_code_head(np.stack([noisy, merged, right], axis=1), embeddings, k=5)
  assert head == 2 and np.argsort(head_losses).tolist() == [2, 1, 0]
  # The right head: neighbours agree with certainty (0 nats) and the mean prediction is uniform.
  np.testing.assert_allclose(head_losses[2], -5.0 * np.log(3), atol=1e-6)
