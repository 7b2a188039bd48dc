"""k-means in JAX: k-means++ seeding, `n_init` restarts, Lloyd iterations to a tolerance.

Runs wherever JAX runs (the point: clustering 50,000 x 512 features on the accelerator
that trained the GAN). Distances are computed `chunk_size` points at a time, so an
`N x K` matrix never has to exist at once. The conventions follow scikit-learn's
`KMeans` (greedy k-means++ with 2 + log(k) candidates per centre, tolerance relative to
the mean feature variance, a final assignment step), so inertias are comparable.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class KMeansResult(NamedTuple):
  labels: jax.Array     # int32 `N`: index of each point's centroid.
  centroids: jax.Array  # float32 `K x D`.
  inertia: jax.Array    # float32 scalar: sum of squared distances to the assigned centroids.
  n_iter: jax.Array     # int32 scalar: Lloyd iterations of the best restart.


def kmeans(features: np.ndarray | jax.Array, k: int, *, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-4, seed: int = 0, chunk_size: int = 4096) -> KMeansResult:
  """Clusters `features` (`N x D`) into `k` clusters; keeps the restart with the lowest inertia.

  Args:
    features: `N x D` array (cast to float32).
    k: number of clusters.
    n_init: independent k-means++ restarts (run in parallel with `vmap`).
    max_iter: Lloyd iterations at most per restart.
    tol: stop when the summed squared centroid shift is <= tol x mean feature variance.
    seed: the result is a deterministic function of (features, k, seed, settings).
    chunk_size: points per distance block; memory is O(chunk_size x K) per restart.
  """
  x = jnp.asarray(features, jnp.float32)
  if x.ndim != 2:
    raise ValueError(f"features must be N x D, got shape {x.shape}")
  n = x.shape[0]
  if not 1 <= k <= n:
    raise ValueError(f"k={k} must be between 1 and the number of points ({n})")
  chunk_size = min(chunk_size, n)
  padded = -(-n // chunk_size) * chunk_size
  weights = jnp.concatenate([jnp.ones(n), jnp.zeros(padded - n)])
  x = jnp.pad(x, ((0, padded - n), (0, 0)))
  tol_abs = tol * jnp.mean(jnp.var(x[:n], axis=0))
  labels, centroids, inertia, n_iter = _kmeans(x, weights, tol_abs, jax.random.PRNGKey(seed), k=k, n_init=n_init,
                                               max_iter=max_iter, chunk_size=chunk_size)
  return KMeansResult(labels[:n], centroids, inertia, n_iter)


def predict(features: np.ndarray | jax.Array, centroids: jax.Array, chunk_size: int = 4096) -> jax.Array:
  """int32 `N`: the nearest of `centroids` (`K x D`) for each row of `features` (`N x D`)."""
  x = jnp.asarray(features, jnp.float32)
  n = x.shape[0]
  chunk_size = min(chunk_size, n)
  x = jnp.pad(x, ((0, -(-n // chunk_size) * chunk_size - n), (0, 0)))
  labels, _ = _assign(x, jnp.sum(x * x, axis=1), jnp.asarray(centroids, jnp.float32), chunk_size)
  return labels[:n]


def _sq_distances(x_NxD, x_sq_N, c_KxD):
  d = x_sq_N[:, None] - 2.0 * x_NxD @ c_KxD.T + jnp.sum(c_KxD * c_KxD, axis=1)[None, :]
  return jnp.maximum(d, 0.0)


def _assign(x, x_sq, centroids, chunk_size):
  """(nearest centroid `N`, squared distance to it `N`), `chunk_size` points at a time."""
  d = x.shape[1]

  def block(args):
    xb, xb_sq = args
    dist = _sq_distances(xb, xb_sq, centroids)
    return jnp.argmin(dist, axis=1).astype(jnp.int32), jnp.min(dist, axis=1)

  labels, dists = jax.lax.map(block, (x.reshape(-1, chunk_size, d), x_sq.reshape(-1, chunk_size)))
  return labels.reshape(-1), dists.reshape(-1)


def _kmeans_plus_plus(key, x, x_sq, weights, k):
  """Greedy k-means++ (Arthur & Vassilvitskii 2007, as in scikit-learn): each new centre is
  the best of 2 + log(k) candidates drawn with probability proportional to D(x)^2."""
  n = x.shape[0]
  trials = 2 + int(math.log(k))
  key, first_key = jax.random.split(key)
  first = jax.random.choice(first_key, n, p=weights / weights.sum())
  centroids = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
  closest = _sq_distances(x, x_sq, x[first][None])[:, 0] * weights

  def add_centre(i, carry):
    centroids, closest, key = carry
    key, sub = jax.random.split(key)
    candidates = jax.random.choice(sub, n, (trials,), p=closest / jnp.maximum(closest.sum(), 1e-30))
    with_candidate = jnp.minimum(closest[:, None], _sq_distances(x, x_sq, x[candidates])) * weights[:, None]
    best = jnp.argmin(with_candidate.sum(axis=0))
    return centroids.at[i].set(x[candidates[best]]), with_candidate[:, best], key

  centroids, _, _ = jax.lax.fori_loop(1, k, add_centre, (centroids, closest, key))
  return centroids


@functools.partial(jax.jit, static_argnames=("k", "n_init", "max_iter", "chunk_size"))
def _kmeans(x, weights, tol_abs, key, *, k, n_init, max_iter, chunk_size):
  x_sq = jnp.sum(x * x, axis=1)

  def one_restart(key):
    centroids = _kmeans_plus_plus(key, x, x_sq, weights, k)

    def lloyd_step(carry):
      it, centroids, _ = carry
      labels, _ = _assign(x, x_sq, centroids, chunk_size)
      sums = jax.ops.segment_sum(x * weights[:, None], labels, num_segments=k)
      counts = jax.ops.segment_sum(weights, labels, num_segments=k)
      # An empty cluster keeps its centroid rather than collapsing to the origin.
      new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centroids)
      return it + 1, new, jnp.sum((new - centroids) ** 2)

    it, centroids, _ = jax.lax.while_loop(
        lambda carry: (carry[0] < max_iter) & (carry[2] > tol_abs), lloyd_step,
        (jnp.int32(0), centroids, jnp.asarray(jnp.inf, x.dtype)))
    labels, dists = _assign(x, x_sq, centroids, chunk_size)  # Final assignment, as scikit-learn.
    return labels, centroids, jnp.sum(dists * weights), it

  labels, centroids, inertia, n_iter = jax.vmap(one_restart)(jax.random.split(key, n_init))
  best = jnp.argmin(inertia)
  return labels[best], centroids[best], inertia[best], n_iter[best]
