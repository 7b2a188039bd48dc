"""What an evaluation leaves for people: the printed table and the plots."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import decomposition

from gan_jax import files


COLUMNS = ("cluster ACC", "NMI", "ARI", "test acc", "k-NN acc")


def row_values(result: dict[str, Any]) -> tuple[float | None, ...]:
  """A row's `COLUMNS`: clustering ACC / NMI / ARI (k-means, or the categorical code's argmax),
  test accuracy (linear probe, or the K+1 classifier) and k-NN test accuracy; None where absent."""
  clusters = result.get("kmeans") or result.get("code") or {}
  accuracy = (result.get("linear_probe") or result.get("classifier") or {}).get("test_accuracy")
  return (clusters.get("acc"), clusters.get("nmi"), clusters.get("ari"), accuracy,
          (result.get("knn") or {}).get("test_accuracy"))


def format_table(representations: dict[str, dict[str, Any]]) -> str:
  """One row per representation or head, `COLUMNS`."""
  width = max(len(name) for name in representations) + 2
  lines = [f"{'representation':<{width}}" + "".join(f"{c:>13}" for c in COLUMNS)]
  for name, result in representations.items():
    values = row_values(result)
    lines.append(f"{name:<{width}}" + "".join(f"{v:>13.4f}" if v is not None else f"{'-':>13}" for v in values))
  return "\n".join(lines)


def format_summary(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
  """One row per (row, member kind) of a population's summary: mean ± std over seeds of `COLUMNS`."""
  width = max(len(name) for name in summary) + 2
  seeds = max(stats["n"] for columns in summary.values() for stats in columns.values())
  lines = [f"{f'mean ± std over {seeds} seeds':<{width}}" + "".join(f"{c:>17}" for c in COLUMNS)]
  for name, columns in summary.items():
    cells = [f"{columns[c]['mean']:.4f} ± {columns[c]['std']:.4f}" if c in columns else "-" for c in COLUMNS]
    lines.append(f"{name:<{width}}" + "".join(f"{cell:>17}" for cell in cells))
  return "\n".join(lines)


def format_generation(generation: dict[str, dict[str, Any]]) -> str:
  """One row per scored image set (the generator, the real floor): FID, KID, IS,
  precision, recall; then each row's protocol."""
  # KID in the features' own units (papers quote Inception KID x 1e3; a domain
  # classifier's features have another scale), so 4 significant digits, not fixed decimals.
  columns = (("FID", "fid", ".4g"), ("KID", "kid_mean", ".4g"), ("IS", "is_mean", ".4g"),
             ("precision", "precision", ".3f"), ("recall", "recall", ".3f"))
  width = max(len(name) for name in generation) + 2
  lines = [f"{'generation':<{width}}" + "".join(f"{c:>12}" for c, _, _ in columns)]
  for name, scores in generation.items():
    lines.append(f"{name:<{width}}" + "".join(f"{scores[key]:>12{fmt}}" for _, key, fmt in columns))
  lines += [f"  {name}: {scores['protocol']['label']}" for name, scores in generation.items()]
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
