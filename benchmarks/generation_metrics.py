r"""Generation metrics of a run at each of its checkpoints, beside the real-data floor, timed.

  python benchmarks/generation_metrics.py --workdir=runs/mnist_dcgan_fid [--num_samples=10000]

For every checkpoint of the workdir (train with --config.keep large enough to keep them):
FID, KID, IS, precision and recall of `num_samples` EMA-generator images, in the run's
`config.evals.generation` protocol (the default: the domain classifier of mnist_5k,
against the training split). Then the floor, the real test split scored the same way,
and the wall time of each part of one FID of `num_samples` samples: generating them,
their features, and the Frechet distance itself (reference statistics cached before).
Prints a Markdown table.
"""

import argparse
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import runs  # noqa: E402
from gan_jax import sampling  # noqa: E402
from gan_jax.evaluation import generation  # noqa: E402


def row(name, scores, seconds=None):
  cells = [scores["fid"], scores["kid_mean"], scores["kid_std"], scores["is_mean"], scores["precision"],
           scores["recall"]]
  return (f"| {name} | " + " | ".join(f"{v:.4g}" for v in cells)
          + (f" | {seconds:.1f} |" if seconds is not None else " | |"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num_samples", type=int, default=10_000)
  args = parser.parse_args()

  config = runs.load_config(args.workdir)
  settings = generation.get_config(config)
  settings.num_samples = args.num_samples
  start = time.perf_counter()
  scorer = generation.make_evaluator(config, settings)
  print(f"extractor ready (domain classifier trained or loaded, reference statistics cached): "
        f"{time.perf_counter() - start:.1f} s; {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")
  manager_steps = sorted(int(d.name) for d in os.scandir(os.path.join(args.workdir, "checkpoints")) if d.name.isdigit())

  print("\n| images scored | FID | KID | KID std | IS | precision | recall | seconds |")
  print("|---|---|---|---|---|---|---|---|")
  protocol, generate_fn = None, None
  for step in manager_steps:
    run = runs.load_run(args.workdir, step, config)
    generate_fn = generate_fn or sampling.make_generate_fn(run.gan, config.seed, settings.batch_size)
    start = time.perf_counter()
    scores = scorer.run(generate_fn(run.state))
    print(row(f"EMA generator, step {step}", scores, time.perf_counter() - start), flush=True)
    protocol = scores["protocol"]
  floor = scorer.floor()
  if floor is not None:
    print(row(f"real {floor['protocol']['scored']} ({floor['protocol']['n_fake']:,} images)", floor))
  if protocol:
    print(f"\nprotocol: {protocol['label']}; features {protocol['features']}, weights sha256 "
          f"{protocol['weights_sha256'][:12]}, KID {protocol['kid_subsets']} subsets of {protocol['kid_subset_size']}, "
          f"precision/recall k={protocol['pr_k']} on {protocol['n_precision_recall']:,} a side")

  # One FID, by part (the last checkpoint; everything compiled above).
  key = jax.random.PRNGKey(0)
  start = time.perf_counter()
  images = generation.generate(generate_fn(run.state), args.num_samples, key)
  t_generate = time.perf_counter() - start
  start = time.perf_counter()
  feats = scorer.extractor.fn(images)[0]
  t_features = time.perf_counter() - start
  start = time.perf_counter()
  generation.frechet_distance(*generation.feature_statistics(feats), scorer.reference["mu"], scorer.reference["sigma"])
  t_fd = time.perf_counter() - start
  print(f"\nFID of {args.num_samples:,} samples: {t_generate + t_features + t_fd:.2f} s "
        f"(generate {t_generate:.2f} s, features {t_features:.2f} s, Frechet distance {t_fd:.3f} s)")


if __name__ == "__main__":
  main()
