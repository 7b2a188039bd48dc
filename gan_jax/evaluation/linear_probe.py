"""Linear probe in JAX: multinomial logistic regression on frozen features.

The L2 strength is chosen on a validation split carved from the training split over a
log-spaced sweep, then the probe is refitted on the whole training split with the chosen
strength and scored on the test split. The sweep runs from the strongest strength to the
weakest, each fit starting from the previous solution (a warm-started regularisation
path: the weak, slow-to-converge fits start close to their optimum); fitting all
strengths at once with `vmap` would run every lane as long as the slowest one.
Features are standardised with the training split's mean and standard deviation.
The objective is mean cross-entropy + l2/2 ||W||^2, i.e. scikit-learn's
`LogisticRegression(C=1 / (l2 * N))`; it is minimised with Optax's L-BFGS.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax.evaluation import features

DEFAULT_L2_GRID = tuple(float(v) for v in np.logspace(-6, 0, 7))


class LinearProbeResult(NamedTuple):
  test_accuracy: float
  l2: float                          # The chosen strength.
  validation_accuracy: dict[float, float]  # l2 -> accuracy on the validation split.
  per_class_accuracy: np.ndarray     # `C`: test accuracy of each class.
  weights: np.ndarray                # `D x C`, for standardised features.
  bias: np.ndarray                   # `C`.


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                     l2_grid=DEFAULT_L2_GRID, validation_fraction: float = 0.2, max_iter: int = 100,
                     tol: float = 1e-4,
                     seed: int = 0) -> LinearProbeResult:
  """Fits and scores a linear classifier on features.

  Args:
    train_x, test_x: float `N x D` features. train_y, test_y: int `N` labels in [0, C).
    l2_grid: L2 strengths tried; the best on validation accuracy is kept (ties: stronger).
    validation_fraction: fraction of each training class held out to choose the strength.
    max_iter: L-BFGS iterations at most per fit (scikit-learn's default is also 100).
    tol: a fit stops when no gradient entry exceeds it (scikit-learn's rule and default).
    seed: chooses the validation split.
  """
  train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
  train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"features must be N x D with one D, got {train_x.shape} and {test_x.shape}")
  num_classes = int(max(train_y.max(), test_y.max())) + 1
  train_x, test_x = features.standardize(train_x, test_x)

  is_val = validation_split(train_y, validation_fraction, seed)
  grid = sorted(map(float, l2_grid), reverse=True)
  fit_x, fit_y, val_x, val_y = (jnp.asarray(a) for a in (train_x[~is_val], train_y[~is_val],
                                                          train_x[is_val], train_y[is_val]))
  params = {"w": jnp.zeros((train_x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
  solutions, val_acc = [], []
  for l2 in grid:
    params = _fit(fit_x, fit_y, params, l2, num_classes, max_iter, tol)
    solutions.append(params)
    val_acc.append(float(_accuracy(val_x, val_y, params["w"], params["b"])))
  best = int(np.argmax(val_acc))  # First maximum = strongest regularisation among ties.
  l2 = grid[best]

  params = _fit(jnp.asarray(train_x), jnp.asarray(train_y), solutions[best], l2, num_classes, max_iter, tol)
  w, b = params["w"], params["b"]
  predictions = np.asarray(jnp.argmax(test_x @ w + b, axis=1))
  correct = predictions == test_y
  per_class = np.array([correct[test_y == c].mean() if np.any(test_y == c) else np.nan for c in range(num_classes)])
  return LinearProbeResult(float(correct.mean()), l2, dict(zip(grid, map(float, val_acc), strict=True)),
                           per_class, np.asarray(w), np.asarray(b))


def validation_split(labels_N: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """bool `N`: a `fraction` of each class (at least one example), drawn with `seed`."""
  rng = np.random.default_rng(seed)
  is_val = np.zeros(len(labels_N), bool)
  for c in np.unique(labels_N):
    members = np.flatnonzero(labels_N == c)
    is_val[rng.choice(members, max(1, int(round(fraction * len(members)))), replace=False)] = True
  return is_val


@jax.jit
def _accuracy(x, y, w, b):
  return jnp.mean(jnp.argmax(x @ w + b, axis=1) == y)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def _fit(x, y, params, l2, num_classes, max_iter, tol):
  """argmin over params {w: D x C, b: C} of mean softmax cross-entropy + l2/2 ||w||^2,
  by L-BFGS from `params`."""
  labels = jax.nn.one_hot(y, num_classes)

  def objective(params):
    logits = x @ params["w"] + params["b"]
    return jnp.mean(optax.softmax_cross_entropy(logits, labels)) + 0.5 * l2 * jnp.sum(params["w"] ** 2)

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(params, updates), state

  def keep_going(carry):
    _, state = carry
    count = optax.tree_utils.tree_get(state, "count")
    grad = optax.tree_utils.tree_get(state, "grad")
    # scikit-learn's stopping rule (lbfgs gtol): largest gradient entry of the mean objective.
    largest = optax.tree.max(jax.tree.map(jnp.abs, grad))
    return (count == 0) | ((count < max_iter) & (largest > tol))

  params, _ = jax.lax.while_loop(keep_going, step, (params, solver.init(params)))
  return params
