"""k-NN on features against scikit-learn's KNeighborsClassifier."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from gan_jax.evaluation import knn


@pytest.mark.parametrize("k", [1, 20])
def test_knn_agrees_with_scikit_learn_exactly(k):
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(5, 16))
  train_y, test_y = rng.integers(0, 5, 600), rng.integers(0, 5, 250)
  train_x = centres[train_y] + 1.5 * rng.normal(size=(600, 16))
  test_x = centres[test_y] + 1.5 * rng.normal(size=(250, 16))
  # Chunks of 64 test points: the last one is padded, and each sees all the training points.
  result = knn.knn_accuracy(train_x, train_y, test_x, test_y, k=k, chunk_size=64)
  reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(train_x, train_y)
  np.testing.assert_array_equal(result.predictions, reference.predict(test_x))
  assert result.test_accuracy == pytest.approx(reference.score(test_x, test_y))
  assert 0.5 < result.test_accuracy < 1.0  # Overlapping classes: neither chance nor trivial.


def test_knn_ties_go_to_the_smallest_label_and_bad_k_is_named():
  train_x = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
  train_y = np.array([3, 1, 2, 0])
  # k = 4: every label gets one vote; the smallest, 0, wins.
  assert knn.knn_predict(train_x, train_y, np.array([[1.0, 1.0]]), k=4).tolist() == [0]
  # k = 2 next to the first two: labels 3 and 1 tie, 1 wins.
  assert knn.knn_predict(train_x, train_y, np.array([[1.0, 0.05]]), k=2).tolist() == [1]
  with pytest.raises(ValueError, match=r"k=5 must be between 1 and the number of training points \(4\)"):
    knn.knn_predict(train_x, train_y, train_x, k=5)
