"""What an evaluation leaves for people: the printed tables and the plots.

The tables read the evaluators' one stream (`evaluators.run`), flat keys `<evaluator>/<row>/<key>`:
a row is shown where it has a key that a column shows.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import decomposition

from gan_jax import files

# The representation table's columns, each with the keys it shows (a row has one of them):
# clustering ACC / NMI / ARI of k-means or of the categorical code's argmax; test accuracy of
# the linear probe or of the K+1 classifier; k-NN test accuracy.
COLUMN_KEYS = {"cluster ACC": ("kmeans_acc", "code_acc"), "NMI": ("kmeans_nmi", "code_nmi"),
               "ARI": ("kmeans_ari", "code_ari"),
               "test acc": ("linear_probe_test_accuracy", "classifier_test_accuracy"),
               "k-NN acc": ("knn_test_accuracy",)}
COLUMNS = tuple(COLUMN_KEYS)
# The generation table's: (column, key, format).
GENERATION_COLUMNS = (("FID", "fid", ".4g"), ("KID", "kid_mean", ".4g"), ("IS", "is_mean", ".4g"),
                      ("precision", "precision", ".3f"), ("recall", "recall", ".3f"))
# The game evaluator's (`game.py`): D's real/fake accuracy and AUC, its adversarial loss beside
# the loss at chance, and whether the game was alive.
GAME_COLUMNS = (("D accuracy", "accuracy", ".3f"), ("AUC", "auc", ".3f"), ("adv. loss", "adversarial_loss", ".4f"),
                ("at chance", "chance_loss", ".4f"), ("alive", "alive", ".0f"))
GAME_KEYS = {column: (key,) for column, key, _ in GAME_COLUMNS}
GAME_ROW = "real_vs_generated"


def rows(metrics: dict[str, Any], column_keys: dict[str, tuple[str, ...]] | None = None) -> dict[str, dict[str, Any]]:
  """{row: {column: value}} of flat `metrics` ({"<evaluator>/<row>/<key>": value}), in the
  stream's order: each row with a key of `column_keys` (default `COLUMN_KEYS`), each column
  it has a key of."""
  column_of = {key: column for column, keys in (column_keys or COLUMN_KEYS).items() for key in keys}
  table = {}
  for name, value in metrics.items():
    parts = name.split("/")
    if len(parts) == 3 and parts[2] in column_of:
      table.setdefault(parts[1], {})[column_of[parts[2]]] = value
  return table


def format_table(metrics: dict[str, Any]) -> str:
  """One line per row of the representation table (`rows`), `COLUMNS`; "" without rows."""
  table = rows(metrics)
  if not table:
    return ""
  width = max(len(name) for name in table) + 2
  lines = [f"{'representation':<{width}}" + "".join(f"{c:>13}" for c in COLUMNS)]
  for name, values in table.items():
    lines.append(f"{name:<{width}}" + "".join(f"{values[c]:>13.4f}" if c in values else f"{'-':>13}"
                                               for c in COLUMNS))
  return "\n".join(lines)


def format_summary(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
  """One row per (row, member kind) of a population's summary: mean ± std over seeds of `COLUMNS`;
  "" without rows."""
  if not summary:
    return ""
  width = max(len(name) for name in summary) + 2
  seeds = max(stats["n"] for columns in summary.values() for stats in columns.values())
  lines = [f"{f'mean ± std over {seeds} seeds':<{width}}" + "".join(f"{c:>17}" for c in COLUMNS)]
  for name, columns in summary.items():
    cells = [f"{columns[c]['mean']:.4f} ± {columns[c]['std']:.4f}" if c in columns else "-" for c in COLUMNS]
    lines.append(f"{name:<{width}}" + "".join(f"{cell:>17}" for cell in cells))
  return "\n".join(lines)


def _scores(metrics: dict[str, Any], title: str, columns) -> tuple[list[str], dict[str, dict[str, Any]]]:
  """(the lines, the rows) of a table of `columns` ((column, key, format)) over the rows of flat
  `metrics` that have their keys; no lines without any."""
  table = rows(metrics, {column: (key,) for column, key, _ in columns})
  if not table:
    return [], table
  width = max(len(name) for name in table) + 2
  lines = [f"{title:<{width}}" + "".join(f"{c:>12}" for c, _, _ in columns)]
  for name, scores in table.items():
    lines.append(f"{name:<{width}}" + "".join(f"{scores[c]:>12{fmt}}" for c, _, fmt in columns))
  return lines, table


def format_generation(metrics: dict[str, Any]) -> str:
  """One line per scored image set of flat `metrics` (the generator, the real floor):
  `GENERATION_COLUMNS`; then each set's protocol; "" where none was scored."""
  # KID in the features' own units (papers quote Inception KID x 1e3; a domain
  # classifier's features have another scale), so 4 significant digits, not fixed decimals.
  lines, table = _scores(metrics, "generation", GENERATION_COLUMNS)
  protocols = {name.split("/")[1]: value for name, value in metrics.items() if name.endswith("/protocol")}
  lines += [f"  {name}: {protocols[name]['label']}" for name in table if name in protocols]
  return "\n".join(lines)


def format_game(metrics: dict[str, Any]) -> str:
  """The game evaluator's line of flat `metrics` (`GAME_COLUMNS`); "" without it."""
  return "\n".join(_scores(metrics, "game", GAME_COLUMNS)[0])


def format_game_summary(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
  """One line per member kind of a population's game summary: mean ± std over seeds of
  `GAME_COLUMNS` ("alive" as the number of seeds whose game was); "" without one."""
  if not summary:
    return ""
  width = max(len(kind) for kind in summary) + 7
  lines = [f"{'game':<{width}}" + "".join(f"{c:>17}" for c, _, _ in GAME_COLUMNS)]
  for kind, columns in summary.items():
    cells = [f"{sum(columns[c]['values']):.0f} of {columns[c]['n']}" if key == "alive" else
             f"{columns[c]['mean']:.3f} ± {columns[c]['std']:.3f}" for c, key, _ in GAME_COLUMNS]
    lines.append(f"{f'({kind})':<{width}}" + "".join(f"{cell:>17}" for cell in cells))
  return "\n".join(lines)


def _figure(figsize):
  """A matplotlib Figure outside pyplot: no global backend switch (a notebook's stays
  as it is), nothing to close, no display needed on servers."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  return fig, fig.subplots()


def _figure_png(fig) -> bytes:
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  return buffer.getvalue()


def save_contingency_png(path: str, contingency_CxK: np.ndarray, title: str) -> None:
  """The classes x clusters counts as a heat map, clusters reordered by the Hungarian
  matching so that a perfect clustering is a diagonal (with at least as many clusters
  as classes; unmatched clusters come last)."""
  counts = np.asarray(contingency_CxK)
  _, cols = linear_sum_assignment(counts, maximize=True)
  order = list(cols) + [c for c in range(counts.shape[1]) if c not in set(cols)]
  counts = counts[:, order]
  fig, ax = _figure((0.5 * counts.shape[1] + 2, 0.5 * counts.shape[0] + 1.5))
  ax.imshow(counts, cmap="Blues")
  for (i, j), n in np.ndenumerate(counts):
    ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > counts.max() / 2 else "black")
  ax.set(xlabel="cluster (matched order)", ylabel="class", title=title,
         xticks=range(counts.shape[1]), xticklabels=order, yticks=range(counts.shape[0]))
  files.write_atomic(path, _figure_png(fig))


def save_embedding_png(path: str, train_x: np.ndarray, test_x: np.ndarray, test_y: np.ndarray | None,
                       title: str) -> None:
  """Test features on the training split's first two principal components, coloured by class."""
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  pca = decomposition.PCA(2, random_state=0).fit((train_x - mean) / std)
  xy = pca.transform((test_x - mean) / std)
  fig, ax = _figure((5, 5))
  points = ax.scatter(xy[:, 0], xy[:, 1], c=test_y, cmap="tab10", s=4)
  if test_y is not None:
    ax.legend(*points.legend_elements(), title="class", fontsize=7, loc="best", markerscale=0.8)
  ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
  files.write_atomic(path, _figure_png(fig))
