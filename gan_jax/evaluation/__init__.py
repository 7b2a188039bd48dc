"""Evaluating what a GAN learned about images: features, clustering and linear probes.

`evaluate(train_x, train_y, test_x, test_y)` is the protocol on one representation:
features standardised with the training split's statistics; k-means fitted on the
training split and its clusters assigned to the test split (ACC / NMI / ARI on test);
a linear probe with its L2 strength chosen on a validation part of the training split.
The evaluators share one interface (`evaluators`): each module declares its options and an
`Evaluator` whose `run(state)` yields `(key, value)` pairs, built from `config.evals.<name>` by
name, alike inside training and by `gan_jax.runs.evaluate_workdir(workdir)` (what `eval.py`
does). `representation` runs the protocol on D's features beside the controls; `generation`
scores the generator itself: FID, KID, IS, precision and recall. This package never imports
the training code: `runs` restores a run and hands it over.
"""

from __future__ import annotations

# Modules, not their functions: `gan_jax.evaluation.kmeans` must stay the module.
from gan_jax.evaluation import features
from gan_jax.evaluation import generation
from gan_jax.evaluation import kmeans
from gan_jax.evaluation.linear_probe import fit_linear_probe
from gan_jax.evaluation.metrics import cluster_accuracy, clustering_metrics, contingency_matrix
from gan_jax.evaluation.protocol import evaluate

__all__ = ["evaluate", "features", "generation", "kmeans", "fit_linear_probe", "cluster_accuracy",
           "clustering_metrics", "contingency_matrix"]
