r"""Does a GAN help classify and cluster images? One table: classical methods on raw pixels
beside every representation the project offers, mean and std over seeds.

  python benchmarks/representations.py --runs='runs/default_seed{seed}' --seeds=0,1,2 \
      [--infogan_runs='runs/infogan_seed{seed}'] [--ssl_runs='runs/ssl_seed{seed}'] \
      [--supervised_runs='runs/supervised_seed{seed}'] [--out_dir=docs/representations]

Rows, all on the same splits of the runs' dataset (the test split scored, the training
split fitted):
  raw pixels, scikit-learn: SVM (RBF), random forest (100 trees), k-NN (cosine, k = 20),
    logistic regression; k-means (ours) on the pixels.
  random discriminator (each run's initialisation, the control) and trained discriminator
    (at the run's configured feature choice): linear probe, k-NN, k-means, as eval.py
    computes them (`gan_jax.runs.evaluate_workdir`).
  categorical code (InfoGAN runs) and semi-supervised classifier (K+1 runs), when given, with
    those runs' trained discriminators; the K+1 runs' control (the same D trained on the
    labelled subset alone), when given.
On mnist_5k a last column quotes published figures on full MNIST, labelled as such.
Columns: test accuracy, clustering ACC / NMI / ARI, wall time in seconds (each mean +- std
over the seeds; a seed is one GAN run, and the seed of the random forest and of k-means).
Writes `representations.md` (the table), `representations.json` (each seed's values) and
`representations.png` (a bar plot) to --out_dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from sklearn import ensemble, linear_model, neighbors, preprocessing, svm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import files  # pylint: disable=g-import-not-at-top
from gan_jax import runs  # pylint: disable=g-import-not-at-top
from gan_jax.evaluation import protocol  # pylint: disable=g-import-not-at-top
from gan_jax.evaluation import report  # pylint: disable=g-import-not-at-top

COLUMNS = ("test accuracy", "cluster ACC", "NMI", "ARI", "seconds")
ANCHOR_COLUMN = "published anchor (full MNIST, 60,000 training images; not this subset)"
# Figures from the papers, for the rows that have one; they are on full MNIST, so they say
# what the method reaches with 12x the data, not what it should reach here.
MNIST_ANCHORS = {
    "raw pixels: SVM (RBF)": "test accuracy 0.986 (SVM, Gaussian kernel; LeCun et al. 1998)",
    "raw pixels: logistic regression": "test accuracy 0.880 (linear classifier; LeCun et al. 1998)",
    "raw pixels: k-means": "cluster ACC 0.535 (k-means; Xie et al. 2016, DEC)",
    "InfoGAN: categorical code (argmax Q)": "cluster ACC 0.95 (InfoGAN); 0.91 mean of 5 runs, 0.95 best (ClusterGAN)",
    "K+1 GAN: K+1 classifier": "test error 0.93% with 100 labels (Improved GAN); 0.80% (Bad GAN)",
}


def classifiers(seed: int) -> dict[str, object]:
  """scikit-learn's classical classifiers on standardised pixels (defaults, except k-NN's
  metric and k, which follow the project's k-NN)."""
  return {
      "SVM (RBF)": svm.SVC(kernel="rbf"),
      "random forest": ensemble.RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=-1),
      f"k-NN (cosine, k={protocol.KNN_K})": neighbors.KNeighborsClassifier(protocol.KNN_K, metric="cosine"),
      "logistic regression": linear_model.LogisticRegression(max_iter=1000),
  }


def pixel_rows(train: data.ImageDataset, test: data.ImageDataset, seed: int) -> dict[str, dict[str, float]]:
  """{row: {column: value}} of the classical methods and k-means on pixels, for one seed."""
  scaler = preprocessing.StandardScaler().fit(train.images.reshape(len(train), -1) / 255.0)
  x_train = scaler.transform(train.images.reshape(len(train), -1) / 255.0)
  x_test = scaler.transform(test.images.reshape(len(test), -1) / 255.0)
  rows = {}
  for name, model in classifiers(seed).items():
    start = time.perf_counter()
    accuracy = model.fit(x_train, train.labels).score(x_test, test.labels)
    rows[f"raw pixels: {name}"] = {"test accuracy": accuracy, "seconds": time.perf_counter() - start}
  start = time.perf_counter()
  result = protocol.evaluate(x_train, train.labels, x_test, test.labels, seed=seed, probe=False)
  rows["raw pixels: k-means"] = {"cluster ACC": result["kmeans"]["acc"], "NMI": result["kmeans"]["nmi"],
                                 "ARI": result["kmeans"]["ari"], "seconds": time.perf_counter() - start}
  return rows


def run_rows(workdir: str, label: str, random_control: bool = True) -> dict[str, dict[str, float]]:
  """{row: {column: value}} of one run's representations, as eval.py scores them (its
  linear probe, k-NN and k-means; for GAN-native heads their own assignments). Without
  `random_control`, the random discriminator's rows are left out (the main runs have them)."""
  start = time.perf_counter()
  metrics = runs.evaluate_workdir(workdir, write=False, generation_samples=0)
  seconds = time.perf_counter() - start
  names = {"gan_discriminator": f"{label}: trained discriminator",
           "random_discriminator": f"{label}: random discriminator (control)",
           "categorical_code": f"{label}: categorical code (argmax Q)",
           "semi_supervised": f"{label}: K+1 classifier"}
  rows = {}
  for row, result in metrics["representations"].items():
    if row not in names or (row == "random_discriminator" and not random_control):
      continue  # raw_pixels: the classical rows above read the pixels.
    methods = {"linear probe": (result.get("linear_probe") or result.get("classifier") or {}).get("test_accuracy"),
               "k-NN": (result.get("knn") or {}).get("test_accuracy")}
    clusters = result.get("kmeans") or result.get("code")
    if row in ("categorical_code", "semi_supervised"):
      rows[names[row]] = {"test accuracy": methods["linear probe"], **_clusters(clusters), "seconds": seconds}
      continue
    rows[f"{names[row]}: linear probe"] = {"test accuracy": methods["linear probe"], "seconds": seconds}
    rows[f"{names[row]}: k-NN"] = {"test accuracy": methods["k-NN"], "seconds": seconds}
    rows[f"{names[row]}: k-means"] = {**_clusters(clusters), "seconds": seconds}
  return rows


def _clusters(result: dict | None) -> dict[str, float]:
  if not result:
    return {}
  return {"cluster ACC": result["acc"], "NMI": result["nmi"], "ARI": result["ari"]}


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float, int]]]:
  """{row: {column: (mean, std, n)}} over the seeds that have the row and the column."""
  table = {}
  for rows in per_seed:
    for row, values in rows.items():
      for column, value in values.items():
        if value is not None:
          table.setdefault(row, {}).setdefault(column, []).append(float(value))
  return {row: {c: (float(np.mean(v)), float(np.std(v)), len(v)) for c, v in cols.items()}
          for row, cols in table.items()}


def to_markdown(table: dict[str, dict[str, tuple[float, float, int]]], num_seeds: int,
                anchors: dict[str, str] | None = None) -> str:
  """The table as Markdown; `anchors` ({row: text}), if given, fills a last column."""
  columns = COLUMNS + ((ANCHOR_COLUMN,) if anchors else ())
  lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  for row, cols in table.items():
    cells = []
    for column in COLUMNS:
      if column not in cols:
        cells.append("")
        continue
      mean, std, n = cols[column]
      fmt = ".1f" if column == "seconds" else ".3f"
      cells.append(f"{mean:{fmt}} +- {std:{fmt}}" + ("" if n == num_seeds else f" ({n} of {num_seeds} seeds)"))
    if anchors:
      cells.append(anchors.get(row, ""))
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def bar_plot(table: dict[str, dict[str, tuple[float, float, int]]], path: str) -> None:
  """Test accuracy and cluster ACC of each row, with their std as error bars."""
  fig, axes = report._figure((11, 0.35 * len(table) + 1.5))  # pylint: disable=protected-access
  rows = list(table)
  for offset, column in ((-0.2, "test accuracy"), (0.2, "cluster ACC")):
    means = [table[r].get(column, (np.nan, 0, 0))[0] for r in rows]
    stds = [table[r].get(column, (np.nan, 0, 0))[1] for r in rows]
    axes.barh(np.arange(len(rows)) + offset, means, height=0.4, xerr=stds, label=column)
  axes.set_yticks(np.arange(len(rows)), rows, fontsize=8)
  axes.invert_yaxis()
  axes.set_xlim(0, 1)
  axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)  # Above the bars, never over one.
  files.write_atomic(path, report._figure_png(fig))  # pylint: disable=protected-access


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", required=True, help="workdir of the GAN run of each seed, with {seed}")
  parser.add_argument("--infogan_runs", help="workdirs of InfoGAN runs, with {seed} (optional)")
  parser.add_argument("--ssl_runs", help="workdirs of semi-supervised K+1 runs, with {seed} (optional)")
  parser.add_argument("--supervised_runs", help="workdirs of the K+1 runs' control, the same D trained on "
                      "the labelled subset alone (configs/mnist_ssl.py:supervised_only), with {seed} (optional)")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--out_dir", default="docs/representations")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  config = runs.load_config(args.runs.format(seed=seeds[0]))
  splits = [data.load_split(config.data, split, image_size=config.image_size, channels=config.channels)
            for split in ("train", "test")]
  templates = ((args.runs, "GAN"), (args.infogan_runs, "InfoGAN"), (args.ssl_runs, "K+1 GAN"),
               (args.supervised_runs, "labelled subset alone (control)"))
  per_seed = []
  for seed in seeds:
    rows = pixel_rows(*splits, seed)
    for template, label in templates:
      if template == args.runs and not os.path.isdir(template.format(seed=seed)):
        sys.exit(f"representations.py: --runs: no {template.format(seed=seed)} for seed {seed}")
      if template and os.path.isdir(template.format(seed=seed)):
        rows.update(run_rows(template.format(seed=seed), label, random_control=template == args.runs))
      elif template:  # Its rows then average fewer seeds, which the table says.
        print(f"seed {seed}: no {template.format(seed=seed)}; its {label} rows skip this seed", flush=True)
    per_seed.append(rows)
    print(f"seed {seed}: {len(rows)} rows", flush=True)
  table = aggregate(per_seed)
  text = (f"{splits[0].name} ({len(splits[0])}) fitted, {splits[1].name} ({len(splits[1])}) scored; mean +- std "
          f"over seeds {', '.join(map(str, seeds))}; runs: " + "; ".join(
              f"{label} {template}" for template, label in templates if template) + ". Seconds: fit and score; for a run's rows, "
          "its whole evaluation (features of both splits, every evaluator and representation), not its training. "
          "Per-seed values: representations.json.\n\n"
          + to_markdown(table, len(seeds), MNIST_ANCHORS if config.data.name == "mnist_5k" else None))
  os.makedirs(args.out_dir, exist_ok=True)
  files.write_atomic(os.path.join(args.out_dir, "representations.md"), text.encode())
  files.write_json(os.path.join(args.out_dir, "representations.json"), dict(zip(map(str, seeds), per_seed)))
  bar_plot(table, os.path.join(args.out_dir, "representations.png"))
  print(text)
  return table


if __name__ == "__main__":
  main()
