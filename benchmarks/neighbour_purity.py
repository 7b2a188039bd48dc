r"""How often an image's nearest neighbour shows the same digit, by pool size: how clean the
pairs of SCAN's neighbour term (`infogan.neighbours`) can be.

  python benchmarks/neighbour_purity.py --workdir=runs/infogan_scan_rw0_seed0 --step=1000

For each representation of the run's discriminator (cosine similarity, as the term uses), and
each pool size (a training batch, larger pools, the whole training split), the
fraction of the pool's images whose nearest other image in the pool has the same label,
averaged over random pools of the training split. Prints a Markdown table. For a run that
mines its neighbours over the training set (`infogan.neighbours`), it
also prints how many of the k neighbours in the run's own table share each image's label.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gan_jax  # noqa: E402


def neighbour_purity(x_NxF: np.ndarray, labels_N: np.ndarray, pool: int, trials: int, seed: int = 0) -> float:
  """Mean fraction of same-label nearest neighbours (cosine) in random pools of `pool` images."""
  x = x_NxF / np.linalg.norm(x_NxF, axis=1, keepdims=True).clip(1e-6)
  rng = np.random.default_rng(seed)
  hits = []
  for _ in range(trials if pool < len(x) else 1):
    idx = rng.permutation(len(x))[:pool]
    similarity = x[idx] @ x[idx].T
    np.fill_diagonal(similarity, -np.inf)
    hits.append(np.mean(labels_N[idx][similarity.argmax(1)] == labels_N[idx]))
  return float(np.mean(hits))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument("--representations", default="projection,pre_logits,last_conv_max,dcgan")
  parser.add_argument("--pools", default="64,256,2112,4000")
  parser.add_argument("--trials", type=int, default=50)
  args = parser.parse_args()
  run = gan_jax.load_run(args.workdir, args.step)
  train = gan_jax.load_dataset(run.config.data.name, "train", image_size=run.config.image_size,
                               channels=run.config.channels, resize=run.config.data.resize)
  pools = [min(int(p), len(train.labels)) for p in args.pools.split(",")]
  print(f"{args.workdir}, step {run.step}: same-label nearest neighbour, by pool size\n")
  print("| representation | " + " | ".join(f"pool {p}" for p in pools) + " |")
  print("|---|" + "---|" * len(pools))
  for representation in args.representations.split(","):
    x = gan_jax.extract_features(run, train.images, representation)
    row = [neighbour_purity(x, train.labels, p, args.trials) for p in pools]
    print(f"| {representation} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
  if "neighbours" in run.state:
    table = np.asarray(run.state["neighbours"])
    labels = train.labels[:len(table)]  # One process trains on the split in order, less N mod devices.
    same = labels[table] == labels[:, None]
    print(f"\nThe run's table ({table.shape[1]} neighbours per training image, as mined last before step "
          f"{run.step}): {same.mean():.3f} share the image's label; the nearest one {same[:, 0].mean():.3f}.")


if __name__ == "__main__":
  main()
