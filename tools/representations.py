r"""Does a GAN help classify and cluster images? One table: eval.py's reports of population runs
(seeds x ablations, the configs' `:ablations` argument) beside classical methods on raw pixels.

  python train.py --config=configs/mnist_dcgan.py:ablations --workdir=runs/ablations
  python eval.py --workdir=runs/ablations     # the same for mnist_infogan.py and mnist_ssl.py
  python tools/representations.py --population=GAN=runs/ablations \
      --population=InfoGAN=runs/infogan_ablations --population="K+1 GAN=runs/ssl_ablations" \
      --out_dir=docs/representations

Rows, all on the same splits of the runs' dataset (the test split scored, the training split
fitted):
  raw pixels, scikit-learn: SVM (RBF), random forest (100 trees), k-NN (cosine, k = 20) and
    logistic regression on standardised pixels, one fit per seed of the populations.
  each population's summary as eval.py wrote it (`eval/step_<N>/metrics.json`, the latest step
    unless --step): every member kind (the full recipe and each ablation) with its trained D and
    GAN-native heads, then the controls (random D, and raw pixels under eval.py's protocol).
Columns: eval.py's (clustering ACC / NMI / ARI, linear probe or head test accuracy, k-NN test
accuracy), each mean +- std over seeds (std with n - 1, as eval.py). On mnist_5k a last column
quotes published figures on full MNIST, labelled as such. Writes `representations.md` (the
table), `representations.json` (each seed's values) and `representations.png` (a bar plot).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np
from sklearn import ensemble, linear_model, neighbors, preprocessing, svm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import data  # pylint: disable=g-import-not-at-top
from gan_jax import files  # pylint: disable=g-import-not-at-top
from gan_jax import population  # pylint: disable=g-import-not-at-top
from gan_jax import runs  # pylint: disable=g-import-not-at-top
from gan_jax.evaluation import protocol  # pylint: disable=g-import-not-at-top
from gan_jax.evaluation import report  # pylint: disable=g-import-not-at-top
from gan_jax.evaluation import run_report  # pylint: disable=g-import-not-at-top

COLUMNS = report.COLUMNS
ANCHOR_COLUMN = "published anchor (full MNIST, 60,000 training images; not this subset)"
# Figures from the papers, for the rows that have one; they are on full MNIST, so they say
# what the method reaches with 12x the data, not what it should reach here.
MNIST_ANCHORS = {
    "raw pixels: SVM (RBF)": "test accuracy 0.986 (SVM, Gaussian kernel; LeCun et al. 1998)",
    "raw pixels: logistic regression": "test accuracy 0.880 (linear classifier; LeCun et al. 1998)",
    "raw pixels (control)": "cluster ACC 0.535 (k-means; Xie et al. 2016, DEC)",
    "InfoGAN: categorical code (argmax Q)": "cluster ACC 0.95 (InfoGAN); 0.91 mean of 5 runs, 0.95 best (ClusterGAN)",
    "K+1 GAN: K+1 classifier": "test error 0.93% with 100 labels (Improved GAN); 0.80% (Bad GAN)",
}
ROW_NAMES = {"gan_discriminator": "trained D", "random_discriminator": "random D (control)",
             "raw_pixels": "raw pixels (control)", "categorical_code": "categorical code (argmax Q)",
             "semi_supervised": "K+1 classifier", "semi_supervised_online": "K+1 classifier, online D",
             "categorical_code_online": "categorical code (argmax Q), online D"}
SUMMARY_ROW = re.compile(r"(\w+) \((\S+)\)$")  # "<row> (<member kind>)", as run_report.summarize names them.


def classifiers(seed: int) -> dict[str, object]:
  """scikit-learn's classical classifiers on standardised pixels (defaults, except k-NN's
  metric and k, which follow the project's k-NN)."""
  return {
      "SVM (RBF)": svm.SVC(kernel="rbf"),
      "random forest": ensemble.RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=-1),
      f"k-NN (cosine, k={protocol.KNN_K})": neighbors.KNeighborsClassifier(protocol.KNN_K, metric="cosine"),
      "logistic regression": linear_model.LogisticRegression(max_iter=1000),
  }


def pixel_rows(train: data.ImageDataset, test: data.ImageDataset, seeds: list[int]) -> dict[str, dict[str, dict]]:
  """{row: {"test acc": `run_report.stats` over seeds}} of the classical classifiers on pixels."""
  scaler = preprocessing.StandardScaler().fit(train.images.reshape(len(train), -1) / 255.0)
  x_train = scaler.transform(train.images.reshape(len(train), -1) / 255.0)
  x_test = scaler.transform(test.images.reshape(len(test), -1) / 255.0)
  accuracies = {}
  for seed in seeds:
    for name, model in classifiers(seed).items():
      accuracies.setdefault(f"raw pixels: {name}", []).append(model.fit(x_train, train.labels).score(x_test, test.labels))
  return {row: {"test acc": run_report.stats(values)} for row, values in accuracies.items()}


def read_report(workdir: str, step: int | None) -> dict:
  """The population report eval.py wrote in `workdir` at `step` (default: the latest)."""
  evaluated = os.path.join(workdir, "eval")
  names = os.listdir(evaluated) if os.path.isdir(evaluated) else []
  found = {int(m.group(1)): name for name in names if (m := re.fullmatch(r"step_(\d+)", name))}
  if not found or (step is not None and step not in found):
    sys.exit(f"representations.py: --population {workdir}: no eval/step_{step if step is not None else '<N>'}/"
             f"metrics.json; run eval.py --workdir={workdir}" + (f" --step={step}" if step is not None else "") +
             " first")
  with open(os.path.join(evaluated, found[step if step is not None else max(found)], "metrics.json")) as f:
    metrics = json.load(f)
  if "summary" not in metrics:
    sys.exit(f"representations.py: --population {workdir}: a single run, not a population (train it with a "
             "config's :ablations argument or config.population.seeds > 1)")
  return metrics


def population_rows(label: str, metrics: dict) -> dict[str, dict[str, dict]]:
  """{row: {column: stats over seeds}} of one population's summary as eval.py wrote it, named for the table."""
  rows = {}
  for name, columns in metrics["summary"].items():
    match = SUMMARY_ROW.fullmatch(name)
    row, kind = match.groups() if match else (name, None)
    off = [] if kind in (None, "full") else kind[len("no_"):].split("+")
    kind_text = "" if not off else ", without " + (", ".join(off[:-1]) + " and " if len(off) > 1 else "") + off[-1]
    title = (f"{label}: " if row != "raw_pixels" else "") + ROW_NAMES.get(row, row) + kind_text
    rows[title] = columns
  return rows


def to_markdown(table: dict[str, dict[str, dict]], anchors: dict[str, str] | None = None) -> str:
  """The table ({row: {column: `run_report.stats`}}) as Markdown; `anchors` ({row: text}), if
  given, fills a last column."""
  columns = COLUMNS + ((ANCHOR_COLUMN,) if anchors else ())
  lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  for row, cols in table.items():
    cells = [f"{cols[c]['mean']:.3f} +- {cols[c]['std']:.3f}" if c in cols else "" for c in COLUMNS]
    if anchors:
      cells.append(anchors.get(row, ""))
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def bar_plot(table: dict[str, dict[str, dict]], path: str) -> None:
  """Test accuracy and cluster ACC of each row, with their std as error bars."""
  fig, axes = report._figure((11, 0.35 * len(table) + 1.5))  # pylint: disable=protected-access
  rows = list(table)
  for offset, column in ((-0.2, "test acc"), (0.2, "cluster ACC")):
    means = [table[r][column]["mean"] if column in table[r] else np.nan for r in rows]
    stds = [table[r][column]["std"] if column in table[r] else 0.0 for r in rows]
    axes.barh(np.arange(len(rows)) + offset, means, height=0.4, xerr=stds, label=column)
  axes.set_yticks(np.arange(len(rows)), rows, fontsize=8)
  axes.invert_yaxis()
  axes.set_xlim(0, 1)
  axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)  # Above the bars, never over one.
  files.write_atomic(path, report._figure_png(fig))  # pylint: disable=protected-access


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--population", action="append", required=True, metavar="LABEL=WORKDIR",
                      help="a population's label in the table and its workdir, evaluated by eval.py; repeatable")
  parser.add_argument("--step", type=int, help="the evaluated step to read (default: each workdir's latest)")
  parser.add_argument("--out_dir", default="docs/representations")
  args = parser.parse_args(argv)
  if bad := [p for p in args.population if "=" not in p]:
    sys.exit(f"representations.py: --population={bad[0]}: expected LABEL=WORKDIR, e.g. GAN=runs/ablations")
  populations = [tuple(p.split("=", 1)) for p in args.population]
  reports = {label: read_report(workdir, args.step) for label, workdir in populations}
  config = runs.load_config(populations[0][1])
  splits = [data.load_split(config.data, split, image_size=config.image_size, channels=config.channels)
            for split in ("train", "test")]
  seeds = sorted({m.seed for _, workdir in populations for m in population.members(runs.load_config(workdir))})
  rows = pixel_rows(*splits, seeds)
  controls = {}
  for label, metrics in reports.items():
    for row, columns in population_rows(label, metrics).items():
      # Raw pixels under eval.py's protocol is the same for every population of one dataset: once, last.
      (controls if row == ROW_NAMES["raw_pixels"] else rows).setdefault(row, columns)
  table = rows | controls
  steps = ", ".join(f"{label} {workdir} step {reports[label]['step']}" for label, workdir in populations)
  text = (f"{splits[0].name} ({len(splits[0])}) fitted, {splits[1].name} ({len(splits[1])}) scored; mean +- std over "
          f"seeds {', '.join(map(str, seeds))}; populations: {steps}. Per-seed values: representations.json.\n\n"
          + to_markdown(table, MNIST_ANCHORS if config.data.name == "mnist_5k" else None))
  os.makedirs(args.out_dir, exist_ok=True)
  files.write_atomic(os.path.join(args.out_dir, "representations.md"), text.encode())
  files.write_json(os.path.join(args.out_dir, "representations.json"), table)
  bar_plot(table, os.path.join(args.out_dir, "representations.png"))
  print(text)
  return table


if __name__ == "__main__":
  main()
