r"""Evaluates a training run: k-means and linear probes on its discriminator's features.

  python eval.py --workdir=runs/mnist_dcgan [--step=N] [--features=dcgan] [--validation] [--generation_samples=N]

Uses the config saved in the workdir and runs the evaluators its `config.evals` names, as
training does; writes their (key, value) pairs, under the keys training logs to TensorBoard,
to workdir/eval/step_<step>/metrics.json beside plots, and prints one row per representation
(the GAN's discriminator and the two controls: a randomly initialised discriminator and raw
pixels), and one per GAN-native head the run has: `categorical_code` (InfoGAN's Q) and
`semi_supervised` (K+1 classifier), each with an `_online` twin where read from D's EMA.
With `config.evals.generation.num_samples` (or --generation_samples), also FID, KID, IS,
precision and recall of the EMA generator and of the real test split (the floor), each with
its protocol (`gan_jax.evaluation.generation`).
"""

import sys

from absl import app
from absl import flags

from gan_jax import metric_logging
from gan_jax import runs
from gan_jax.evaluation import report

_WORKDIR = flags.DEFINE_string("workdir", None, "A train.py workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", None, "k of k-means (default: the number of classes; "
                                     "needed for unlabelled data).")
_FEATURES = flags.DEFINE_string("features", None, "One representation for k-means and the probe (default: "
                                "the run's config.evals.representation.{kmeans,probe}_features).")
_VALIDATION = flags.DEFINE_bool("validation", False, "Score on a stratified 20% of the training split (fitting "
                                "on the rest) instead of the test split: for choosing recipes.")
_GENERATION_SAMPLES = flags.DEFINE_integer(
    "generation_samples", None, "Generated images for FID / KID / IS / precision-recall (default: the run's "
    "config.evals.generation.num_samples; 0: skip them).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  metric_logging.configure_cli_logging()
  try:
    metrics = runs.evaluate_workdir(_WORKDIR.value, _STEP.value, features=_FEATURES.value,
                                    num_clusters=_NUM_CLUSTERS.value, validation=_VALIDATION.value,
                                    generation_samples=_GENERATION_SAMPLES.value)
  except runs.EvalError as e:
    sys.exit(f"eval.py: {e}")
  if "members" in metrics:
    print(f"{metrics['dataset']} step {metrics['step']}: {len(metrics['members'])} members; each one's rows in "
          f"{_WORKDIR.value}/members/<name>/eval/")
    for table in (report.format_game_summary(metrics.get("game_summary", {})),
                  report.format_summary(metrics["summary"])):
      if table:
        print(table)
    return
  if (p := metrics.get("representation/protocol")) is not None:
    whitened = f", whitened to {p['kmeans']['whiten']} dims" if p["kmeans"]["whiten"] else ""
    print(f"{metrics['dataset']} step {metrics['step']}: k-means on {p['kmeans_features']}{whitened}, probe on "
          f"{p['probe_features']}; fitted on {p['train_split']} ({p['train_size']}), scored on {p['test_split']} "
          f"({p['test_size']})")
  for table in (report.format_game(metrics), report.format_table(metrics), report.format_generation(metrics)):
    if table:
      print(table)


if __name__ == "__main__":
  app.run(main)
