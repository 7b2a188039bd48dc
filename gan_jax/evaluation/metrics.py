"""Clustering metrics: accuracy under the best cluster-to-class matching, NMI, ARI.

Thin wrappers over the reference implementations (scipy's Hungarian solver,
scikit-learn's NMI / ARI / contingency matrix), so numbers match other papers' code.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as sk_metrics


def contingency_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
  """int `C x K` counts: row = true class (sorted), column = predicted cluster (sorted)."""
  return sk_metrics.cluster.contingency_matrix(np.asarray(labels), np.asarray(predictions))


def cluster_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
  """Fraction of points whose cluster maps to their class under the best one-to-one
  matching of clusters to classes (Hungarian algorithm on the contingency matrix).

  With more clusters than classes, the unmatched clusters count as wrong.
  Args: labels, predictions: integer arrays of shape `N`.
  """
  counts = contingency_matrix(labels, predictions)
  rows, cols = linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / counts.sum())


def clustering_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
  """{'acc', 'nmi', 'ari'} of cluster assignments `predictions` against classes `labels`."""
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  if labels.shape != predictions.shape or labels.ndim != 1:
    raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal-length vectors")
  return {
      "acc": cluster_accuracy(labels, predictions),
      "nmi": float(sk_metrics.normalized_mutual_info_score(labels, predictions)),
      "ari": float(sk_metrics.adjusted_rand_score(labels, predictions)),
  }
