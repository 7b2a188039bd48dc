r"""k-means and the linear probe against scikit-learn on the same features.

  python benchmarks/evaluation_vs_sklearn.py [--workdir=runs/mnist_dcgan] [--cases=...]

Cases:
  blobs_k10, blobs_k100   50,000 x 512 Gaussian blobs (10 or 100 centres), float32
  mnist_pixels            the mnist_5k subset's raw pixels (4,000 train / 1,000 test, 784)
  mnist_gan               its features from the discriminator in --workdir, in the run's
                          probe representation (the default's `dcgan`: 7,168 dims)
For each: wall time of ours (JAX; the first call, which compiles, and a second call)
and of scikit-learn on the same data and settings, their ratio, and the quality match:
k-means inertia ratio (ours / scikit-learn; < 1 is a lower objective) and clustering
accuracy; linear-probe test accuracy of both (same split, L2 grid and stopping rule).
"""

import argparse
import os
import sys
import time

import numpy as np
from sklearn import cluster
from sklearn import datasets
from sklearn import linear_model

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import data  # noqa: E402
from gan_jax.evaluation import features as features_lib  # noqa: E402
from gan_jax.evaluation import kmeans as kmeans_lib  # noqa: E402
from gan_jax.evaluation import linear_probe  # noqa: E402
from gan_jax.evaluation import metrics  # noqa: E402


def timed(fn):
  """(fn(), seconds), waiting for JAX's asynchronous results."""
  import jax
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def blobs(k: int):
  x, y = datasets.make_blobs(n_samples=60_000, n_features=512, centers=k, center_box=(-1.0, 1.0),
                             cluster_std=1.0, random_state=0)
  x = x.astype(np.float32)
  return x[:50_000], y[:50_000], x[50_000:], y[50_000:]


def mnist_pixels():
  (train, train_y), (test, test_y) = data.mnist_5k("train"), data.mnist_5k("test")
  return features_lib.raw_pixel_features(train), train_y, features_lib.raw_pixel_features(test), test_y


def mnist_gan(workdir: str):
  from gan_jax import runs
  from gan_jax.evaluation import representation
  run = runs.load_run(workdir)
  settings = representation.get_config(run.config)
  (train, train_y), (test, test_y) = data.mnist_5k("train"), data.mnist_5k("test")
  extract = lambda images: features_lib.discriminator_features(run.gan.discriminator, run.discriminator, images,
                                                               representation=settings.probe_features)
  print(f"  ({workdir} step {run.step}, features {settings.probe_features})")
  return extract(train), train_y, extract(test), test_y


def compare_kmeans(train_x, train_y, k: int, n_init: int):
  ours_cold, t_cold = timed(lambda: kmeans_lib.kmeans(train_x, k, n_init=n_init, seed=0))
  ours, t_ours = timed(lambda: kmeans_lib.kmeans(train_x, k, n_init=n_init, seed=1))
  ours_inertia = float(ours.inertia)
  # Lloyd, as ours; scikit-learn's default tol and k-means++ are what ours mirrors.
  ref, t_ref = timed(lambda: cluster.KMeans(k, n_init=n_init, algorithm="lloyd", random_state=1).fit(train_x))
  acc_ours = metrics.cluster_accuracy(train_y, np.asarray(ours.labels))
  acc_ref = metrics.cluster_accuracy(train_y, ref.labels_)
  print(f"  k-means K={k} n_init={n_init}: ours {t_ours:.2f} s (first call {t_cold:.2f} s), "
        f"scikit-learn {t_ref:.2f} s, ratio sklearn/ours {t_ref / t_ours:.2f}x; inertia ratio ours/sklearn "
        f"{ours_inertia / ref.inertia_:.4f}; train ACC ours {acc_ours:.4f} vs {acc_ref:.4f}")


def sklearn_probe(train_x, train_y, test_x, test_y, *, l2_grid, validation_fraction=0.2, seed=0):
  """The protocol of `fit_linear_probe` with scikit-learn's LogisticRegression."""
  train_x, test_x = features_lib.standardize(train_x, test_x)
  is_val = linear_probe.validation_split(train_y, validation_fraction, seed)
  grid = sorted(l2_grid, reverse=True)
  model = linear_model.LogisticRegression(warm_start=True, max_iter=100)
  accuracies, solutions = [], []
  n = int((~is_val).sum())
  for l2 in grid:
    model.set_params(C=1.0 / (l2 * n)).fit(train_x[~is_val], train_y[~is_val])
    accuracies.append(model.score(train_x[is_val], train_y[is_val]))
    solutions.append((model.coef_.copy(), model.intercept_.copy()))
  best = int(np.argmax(accuracies))
  # The refit starts from the chosen strength's solution, as ours does.
  model.coef_, model.intercept_ = solutions[best]
  model.set_params(C=1.0 / (grid[best] * len(train_x))).fit(train_x, train_y)
  return model.score(test_x, test_y), grid[best]


def compare_probe(train_x, train_y, test_x, test_y):
  import warnings
  from sklearn.exceptions import ConvergenceWarning
  cold, t_cold = timed(lambda: linear_probe.fit_linear_probe(train_x, train_y, test_x, test_y))
  ours, t_ours = timed(lambda: linear_probe.fit_linear_probe(train_x, train_y, test_x, test_y))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # Both stop at 100 iterations.
    (ref_acc, ref_l2), t_ref = timed(lambda: sklearn_probe(train_x, train_y, test_x, test_y,
                                                           l2_grid=linear_probe.DEFAULT_L2_GRID))
  print(f"  linear probe ({len(linear_probe.DEFAULT_L2_GRID)} L2 strengths + refit): ours {t_ours:.2f} s "
        f"(first call {t_cold:.2f} s), scikit-learn {t_ref:.2f} s, ratio sklearn/ours {t_ref / t_ours:.2f}x; "
        f"test accuracy ours {ours.test_accuracy:.4f} (l2 {ours.l2:g}) vs {ref_acc:.4f} (l2 {ref_l2:g}), "
        f"difference {100 * (ours.test_accuracy - ref_acc):+.2f} points")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="runs/mnist_dcgan", help="run whose discriminator gives mnist_gan")
  parser.add_argument("--cases", default="blobs_k10,blobs_k100,mnist_pixels,mnist_gan")
  args = parser.parse_args()
  import jax
  print(f"JAX {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()}, {os.cpu_count()} CPUs")
  for case in args.cases.split(","):
    print(case)
    if case.startswith("blobs_k"):
      k = int(case[len("blobs_k"):])
      train_x, train_y, test_x, test_y = blobs(k)
      compare_kmeans(train_x, train_y, k, n_init=3)
      if k == 10:
        compare_probe(train_x, train_y, test_x, test_y)
      continue
    train_x, train_y, test_x, test_y = mnist_pixels() if case == "mnist_pixels" else mnist_gan(args.workdir)
    z, _ = features_lib.standardize(train_x, test_x)
    compare_kmeans(z, train_y, 10, n_init=10)
    compare_probe(train_x, train_y, test_x, test_y)


if __name__ == "__main__":
  main()
