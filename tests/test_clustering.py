import numpy as np
import pytest
from sklearn import cluster as sk_cluster
from sklearn import datasets as sk_datasets
from sklearn import metrics as sk_metrics

from gan_jax import data
from gan_jax.evaluation import kmeans as kmeans_lib
from gan_jax.evaluation import metrics


def test_permuted_labels_are_perfect_clusters():
  labels = np.array([0, 0, 1, 1, 2, 2, 2])
  permuted = np.array([2, 0, 1])[labels]
  assert metrics.cluster_accuracy(labels, permuted) == 1.0
  assert metrics.clustering_metrics(labels, permuted) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}


def test_cluster_accuracy_by_hand():
  labels = np.array([0, 0, 0, 1, 1, 1])
  predictions = np.array([1, 1, 0, 0, 0, 0])
  # Best matching: cluster 1 -> class 0 (2 right), cluster 0 -> class 1 (3 right): 5 / 6.
  assert metrics.cluster_accuracy(labels, predictions) == pytest.approx(5 / 6)
  np.testing.assert_array_equal(metrics.contingency_matrix(labels, predictions), [[1, 2], [3, 0]])
  # Three clusters for two classes: the third cluster cannot be matched and counts as wrong.
  assert metrics.cluster_accuracy(labels, np.array([0, 0, 2, 1, 1, 1])) == pytest.approx(5 / 6)


def test_nmi_ari_match_scikit_learn():
  rng = np.random.default_rng(0)
  labels, predictions = rng.integers(0, 5, 300), rng.integers(0, 7, 300)
  result = metrics.clustering_metrics(labels, predictions)
  assert result["nmi"] == pytest.approx(sk_metrics.normalized_mutual_info_score(labels, predictions))
  assert result["ari"] == pytest.approx(sk_metrics.adjusted_rand_score(labels, predictions))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_inertia_matches_scikit_learn_on_blobs(seed):
  x, _ = sk_datasets.make_blobs(2000, n_features=16, centers=8, cluster_std=3.0, random_state=seed)
  ours = kmeans_lib.kmeans(x, 8, n_init=10, seed=seed, chunk_size=512)
  theirs = sk_cluster.KMeans(8, n_init=10, random_state=seed).fit(x)
  assert float(ours.inertia) <= 1.01 * theirs.inertia_
  # The inertia reported is the inertia of the labels and centroids returned.
  centroids = np.asarray(ours.centroids)
  recomputed = ((x - centroids[np.asarray(ours.labels)]) ** 2).sum()
  assert float(ours.inertia) == pytest.approx(recomputed, rel=1e-4)
  # Assigning the same points to the returned centroids gives back the returned labels.
  np.testing.assert_array_equal(np.asarray(kmeans_lib.predict(x, ours.centroids, chunk_size=300)),
                                np.asarray(ours.labels))


def test_kmeans_matches_scikit_learn_on_real_digits_and_is_deterministic():
  images, labels = data.mnist_5k("test")
  x = images.reshape(len(images), -1).astype(np.float32) / 255.0
  ours = kmeans_lib.kmeans(x, 10, n_init=4, seed=0, chunk_size=300)  # Chunk size does not divide N.
  theirs = sk_cluster.KMeans(10, n_init=4, random_state=0).fit(x)
  assert float(ours.inertia) <= 1.01 * theirs.inertia_
  again = kmeans_lib.kmeans(x, 10, n_init=4, seed=0, chunk_size=300)
  np.testing.assert_array_equal(np.asarray(ours.labels), np.asarray(again.labels))
  assert metrics.cluster_accuracy(labels, np.asarray(ours.labels)) > 0.4  # Raw pixels cluster digits weakly.


def test_kmeans_rejects_bad_k():
  with pytest.raises(ValueError, match=r"k=0 must be between 1 and the number of points \(5\)"):
    kmeans_lib.kmeans(np.zeros((5, 2)), 0)


def test_evaluate_protocol_on_separable_features():
  from gan_jax import evaluation
  x, y = sk_datasets.make_blobs(600, n_features=8, centers=4, cluster_std=0.5, random_state=0)
  result = evaluation.evaluate(x[:400], y[:400], x[400:], y[400:], n_init=3)
  assert result["kmeans"]["acc"] == 1.0 and result["kmeans"]["nmi"] == pytest.approx(1.0)
  assert result["linear_probe"]["test_accuracy"] == 1.0 and result["feature_dim"] == 8
