"""Evaluating what a GAN learned about images: features, clustering and linear probes.

`evaluate(train_x, train_y, test_x, test_y)` is the protocol on one representation:
features standardised with the training split's statistics; k-means fitted on the
training split and its clusters assigned to the test split (ACC / NMI / ARI on test);
a linear probe with its L2 strength chosen on a validation part of the training split.
"""

from __future__ import annotations

import numpy as np

# Modules, not their functions: `gan_jax.evaluation.kmeans` must stay the module.
from gan_jax.evaluation import features
from gan_jax.evaluation import kmeans as kmeans_lib
from gan_jax.evaluation.linear_probe import fit_linear_probe
from gan_jax.evaluation.metrics import cluster_accuracy, clustering_metrics, contingency_matrix

__all__ = ["evaluate", "fit_linear_probe", "cluster_accuracy", "clustering_metrics", "contingency_matrix"]


def evaluate(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
             num_clusters: int | None = None, n_init: int = 10, seed: int = 0) -> dict:
  """k-means and linear-probe results for one representation.

  Args:
    train_x, test_x: float `N x D` features; train_y, test_y: int `N` class labels.
    num_clusters: k of k-means (default: the number of classes).
    n_init, seed: k-means restarts and the seed of k-means and the validation split.
  Returns:
    {"kmeans": {"acc", "nmi", "ari", "inertia"}, "linear_probe": {"test_accuracy", "l2",
     "per_class_accuracy"}, "feature_dim": D}
  """
  train_z, test_z = features.standardize(train_x, test_x)
  k = num_clusters or int(max(train_y.max(), test_y.max())) + 1
  clusters = kmeans_lib.kmeans(train_z, k, n_init=n_init, seed=seed)
  test_clusters = np.asarray(kmeans_lib.predict(test_z, clusters.centroids))
  probe = fit_linear_probe(train_x, train_y, test_x, test_y, seed=seed)
  return {
      "kmeans": {**clustering_metrics(test_y, test_clusters), "inertia": float(clusters.inertia)},
      "linear_probe": {"test_accuracy": probe.test_accuracy, "l2": probe.l2,
                       "per_class_accuracy": probe.per_class_accuracy.tolist()},
      "feature_dim": int(train_z.shape[1]),
  }
