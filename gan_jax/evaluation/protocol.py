"""The evaluation protocol on one representation's features: k-means, a linear probe and k-NN."""

from __future__ import annotations

import numpy as np

from gan_jax.evaluation import features
from gan_jax.evaluation import kmeans as kmeans_lib
from gan_jax.evaluation import knn as knn_lib
from gan_jax.evaluation.linear_probe import fit_linear_probe
from gan_jax.evaluation.metrics import clustering_metrics, contingency_matrix

# k of the k-NN classifier: 20, as in self-supervised evaluation practice (Wu et al. 2018, DINO).
KNN_K = 20


def evaluate(train_x: np.ndarray, train_y: np.ndarray | None, test_x: np.ndarray, test_y: np.ndarray | None, *,
             num_clusters: int | None = None, whiten: int = 0, n_init: int = 10, seed: int = 0,
             probe: bool = True, probe_x: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
  """k-means, linear-probe and k-NN results for one representation.

  Args:
    train_x, test_x: float `N x D` features. train_y, test_y: int `N` class labels, or
      None for unlabelled data (then only the k-means inertia is reported).
    num_clusters: k of k-means (default: the number of classes).
    whiten: if > 0, k-means runs on the top `whiten` principal components of the
      standardised features, whitened (`features.pca_whiten`); 0: on the standardised features.
    n_init, seed: k-means restarts, and the seed of k-means and the probe's validation split.
    probe: fit the linear probe and score k-NN (cosine, `KNN_K` neighbours, on the
      probe's features standardised with the training split's statistics; needs labels).
    probe_x: (train, test) features for the probe when they are not `train_x, test_x`
      (e.g. a rich representation for the probe and a compact one for k-means).
  Returns:
    {"kmeans": {"acc", "nmi", "ari", "inertia", "contingency"}, "linear_probe":
     {"test_accuracy", "l2", "per_class_accuracy", "feature_dim"}, "knn": {"test_accuracy", "k"},
     "feature_dim": D,
     "kmeans_dim": D' (after whitening)};
    "inertia" is the training split's (the objective k-means minimised), "contingency" the
    test split's classes x clusters counts; without labels only "inertia" and the dims.
  """
  labelled = train_y is not None and test_y is not None
  if num_clusters is None and not labelled:
    raise ValueError("evaluate: num_clusters is needed when there are no labels to count classes from")
  train_z, test_z = features.standardize(train_x, test_x)
  if whiten:
    train_z, test_z = features.pca_whiten(train_z, test_z, whiten, seed=seed)
  k = num_clusters or int(max(train_y.max(), test_y.max())) + 1
  clusters = kmeans_lib.kmeans(train_z, k, n_init=n_init, seed=seed)
  result = {"kmeans": {"inertia": float(clusters.inertia)},
            "feature_dim": int(np.shape(train_x)[1]), "kmeans_dim": int(train_z.shape[1])}
  if not labelled:
    return result
  test_clusters = np.asarray(kmeans_lib.predict(test_z, clusters.centroids))
  result["kmeans"].update(clustering_metrics(test_y, test_clusters),
                          contingency=contingency_matrix(test_y, test_clusters).tolist())
  if probe:
    probe_train_x, probe_test_x = probe_x if probe_x is not None else (train_x, test_x)
    fit = fit_linear_probe(probe_train_x, train_y, probe_test_x, test_y, seed=seed)
    result["linear_probe"] = {"test_accuracy": fit.test_accuracy, "l2": fit.l2,
                              "per_class_accuracy": fit.per_class_accuracy.tolist(),
                              "feature_dim": int(np.shape(probe_train_x)[1])}
    knn_train_x, knn_test_x = features.standardize(probe_train_x, probe_test_x)
    neighbours = knn_lib.knn_accuracy(knn_train_x, train_y, knn_test_x, test_y, k=min(KNN_K, len(train_y)))
    result["knn"] = {"test_accuracy": neighbours.test_accuracy, "k": neighbours.k}
  return result
