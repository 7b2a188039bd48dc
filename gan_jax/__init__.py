"""gan_jax: train GANs in JAX and use them to classify and cluster images.

Modules: `data` (datasets and step-indexed batches), `models` (linen generators and
discriminators), `terms` (the loss terms, one module per family), `state` (the train state),
`step` (the jit'd update), `loop` (`train_and_evaluate`), `resume`, `neighbours` (SCAN's),
`refit` (heads refitted on the frozen D), `sampling` (the EMA generator), `runs` (a workdir
as a run; where training and evaluation meet), `checkpoints` (Orbax), `parallel` (mesh and
shardings), `visualize` (image grids), `evaluation` (features, k-means, linear probe, k-NN,
generation metrics; never imports the training code).

For notebooks, the functions below are attributes of the package, each with its
docstring (shapes, units, what it returns); they are imported on first use, so that
`import gan_jax.data` stays light:
  data and runs   load_dataset, get_config, make_gan, init_state, train, load_run, sample,
                  extract_features, image_grid
  evaluators      kmeans, kmeans_predict, fit_linear_probe, knn_accuracy, evaluate,
                  clustering_metrics, cluster_accuracy, contingency_matrix
  generation      feature_statistics, frechet_distance, kernel_inception_distance,
                  inception_score, precision_recall
"""

import importlib

_EXPORTS = {
    "load_dataset": "gan_jax.api", "get_config": "gan_jax.api", "make_gan": "gan_jax.api",
    "init_state": "gan_jax.api", "train": "gan_jax.api", "load_run": "gan_jax.api", "sample": "gan_jax.api",
    "extract_features": "gan_jax.api", "image_grid": "gan_jax.visualize",
    "kmeans": "gan_jax.evaluation.kmeans", "kmeans_predict": ("gan_jax.evaluation.kmeans", "predict"),
    "fit_linear_probe": "gan_jax.evaluation.linear_probe", "knn_accuracy": "gan_jax.evaluation.knn",
    "evaluate": "gan_jax.evaluation.protocol", "clustering_metrics": "gan_jax.evaluation.metrics",
    "cluster_accuracy": "gan_jax.evaluation.metrics", "contingency_matrix": "gan_jax.evaluation.metrics",
    "feature_statistics": "gan_jax.evaluation.generation", "frechet_distance": "gan_jax.evaluation.generation",
    "kernel_inception_distance": "gan_jax.evaluation.generation",
    "inception_score": "gan_jax.evaluation.generation", "precision_recall": "gan_jax.evaluation.generation",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'gan_jax' has no attribute {name!r}")
  module, attribute = _EXPORTS[name] if isinstance(_EXPORTS[name], tuple) else (_EXPORTS[name], name)
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value  # Looked up once.
  return value


def __dir__():
  return sorted(list(globals()) + __all__)
