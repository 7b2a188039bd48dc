"""k-nearest-neighbour classification of frozen features, in JAX.

The third reading of a representation beside k-means and the linear probe, as in
self-supervised evaluation practice (cosine similarity, k = 20): a test image takes the
most frequent label among its k most similar training images (a tie goes to the smallest
label, as in scikit-learn). Nothing is fitted. Similarities are computed in chunks of test
images, so memory stays `chunk_size x N_train` whatever the split sizes; the result equals
scikit-learn's `KNeighborsClassifier(k, metric="cosine")` on the same features, up to
neighbours whose similarities tie to float32 precision.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.evaluation import features


class KnnResult(NamedTuple):
  test_accuracy: float
  k: int
  predictions: np.ndarray  # `N_test` int32 labels.


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _vote(train_x, train_y, test_x, *, k: int, num_classes: int):
  similarity = jnp.dot(test_x, train_x.T, precision=jax.lax.Precision.HIGHEST)
  _, neighbours = jax.lax.top_k(similarity, k)
  votes = jax.nn.one_hot(train_y[neighbours], num_classes, dtype=jnp.int32).sum(axis=1)
  return jnp.argmax(votes, axis=1).astype(jnp.int32)  # argmax: the first of tied labels, the smallest.


def _unit_rows(x: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  return x / np.maximum(norms, np.finfo(np.float32).tiny)


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, k: int = 20,
                num_classes: int | None = None, chunk_size: int = 1024) -> np.ndarray:
  """Labels `N_test` (int32) of test features `N_test x D` by a majority vote of their `k`
  nearest training features `N_train x D` (labels `train_y` in [0, num_classes)) by cosine similarity."""
  train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
  train_y = np.asarray(train_y, np.int32)
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"features must be N x D with one D, got {train_x.shape} and {test_x.shape}")
  if not len(test_x):
    raise ValueError("knn: no test features")
  if not 1 <= k <= len(train_x):
    raise ValueError(f"k={k} must be between 1 and the number of training points ({len(train_x)})")
  num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
  vote = functools.partial(_vote, jnp.asarray(_unit_rows(train_x)), jnp.asarray(train_y), k=k,
                           num_classes=num_classes)
  return np.asarray(features.in_batches(vote, _unit_rows(test_x), min(chunk_size, len(test_x))))


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 k: int = 20, chunk_size: int = 1024) -> KnnResult:
  """Test accuracy of `knn_predict` (cosine, `k` neighbours) on `test_y`."""
  test_y = np.asarray(test_y, np.int32)
  num_classes = int(max(np.max(train_y), test_y.max())) + 1
  predictions = knn_predict(train_x, train_y, test_x, k=k, num_classes=num_classes, chunk_size=chunk_size)
  return KnnResult(float(np.mean(predictions == test_y)), k, predictions)
