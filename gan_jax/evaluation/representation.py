"""The representation evaluator: how well a discriminator's features cluster and classify.

One protocol (`config.evals.representation`) for three rows, so they compare:
  gan_discriminator      the trained discriminator's features
  random_discriminator   the same architecture at its initialisation (same seed scheme):
                         what the architecture gives without adversarial training
  raw_pixels             pixels in [0, 1]: what the images give without any network
and, when the discriminator has them, the GAN-native heads (`HEAD_ROWS`):
  categorical_code       InfoGAN's Q head: each test image's cluster is argmax Q(c | x)
                         (ACC / NMI / ARI under "code"; nothing fitted after training; with
                         several Q heads, the one `select_code_head` chooses without labels)
  semi_supervised        the K+1 discriminator's classes: test accuracy and error under
                         "classifier", with the number of labels the run trained on
Each feature row: features of the training and test splits -> `evaluation.evaluate` (k-means
fitted on train and scored on test; linear probe). k-means and the probe may read
different representations of the same network (`kmeans_features`, `probe_features`): k-means
wants a compact, shift-invariant one, a linear probe gains from a rich one. The controls
do not change while the GAN trains, so they are computed once per evaluator. With an EMA of D,
the heads are read from it and each head row has a twin for the online D, `<row>_online`.

`Evaluator.run(state)` yields each row's results as `<row>/<group>_<metric>` ("gan_discriminator/
kmeans_acc", "gan_discriminator/linear_probe_test_accuracy", "categorical_code/code_acc",
"semi_supervised/classifier_test_accuracy"; `evaluation.evaluate`'s groups, joined), then
"protocol": how they were computed. A new metric of `evaluation.evaluate` flows to TensorBoard
and metrics.json by itself; `report.COLUMN_KEYS` says which of them the printed table shows.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterator

from absl import logging
import flax.linen as nn
import ml_collections
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import neighbors

from gan_jax import data
from gan_jax import models
from gan_jax import options
from gan_jax.terms.core import mutual_information_loss
from gan_jax.terms.infogan import neighbour_consistency_loss
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import features as features_lib
from gan_jax.evaluation import linear_probe
from gan_jax.evaluation import metrics
from gan_jax.evaluation import protocol
from gan_jax.evaluation import report

# Share of the training split held out with `Context.validation`.
VALIDATION_FRACTION = 0.2
ROWS = ("gan_discriminator", "random_discriminator", "raw_pixels")
HEAD_ROWS = ("categorical_code", "semi_supervised")
# How `select_code_head` scores a Q head: SCAN's loss (Van Gansbeke et al. 2020) with its k and
# entropy weight, the loss by which SCAN itself keeps one of its heads.
HEAD_NEIGHBOURS = 20
HEAD_ENTROPY_WEIGHT = 5.0


def select_code_head(logits_NxHxK: np.ndarray, embeddings_NxF: np.ndarray, k: int = HEAD_NEIGHBOURS,
                     entropy_weight: float = HEAD_ENTROPY_WEIGHT) -> tuple[int, np.ndarray]:
  """(index, losses `H`): the Q head with the lowest SCAN loss on a split, and each head's.

  A head's loss: -mean_i mean_j log <p(c | x_i), p(c | x_j)> over each image's `k` nearest
  other images by cosine similarity of `embeddings` (the discriminator's, as training mines
  them), less `entropy_weight` x the entropy of the mean prediction. No labels: low when a
  head gives neighbours one confident cluster and uses every cluster.
  """
  nearest = neighbors.NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(embeddings_NxF)
  neighbours_Nxk = nearest.kneighbors(embeddings_NxF, return_distance=False)[:, 1:]

  def head_loss(logits_NxK):  # The terms training minimises (`terms.infogan`), over every neighbour.
    agreement = jax.vmap(lambda j: neighbour_consistency_loss(logits_NxK, logits_NxK[j]), in_axes=1)
    _, _, marginal = mutual_information_loss(logits_NxK)
    return agreement(neighbours_Nxk).mean() - entropy_weight * marginal
  head_losses = np.asarray(jax.vmap(head_loss, in_axes=1)(jnp.asarray(logits_NxHxK, jnp.float32)))
  return int(np.argmin(head_losses)), head_losses


@functools.lru_cache(maxsize=8)  # Modules hash by their fields: one trace per discriminator, not per call.
def _outputs(discriminator: nn.Module) -> dict[str, Any]:
  """{feature name: shape} of what `discriminator` outputs: which heads it carries."""
  size = discriminator.backbone.image_size
  return models.feature_shapes(discriminator, (size, size, 1))


def _code_head_names(discriminator: nn.Module, refit: bool) -> tuple[str, ...]:
  """The features `code_head_logits` concatenates: the trained heads', then the refit ones'."""
  return (("code_logits_heads",) if "code_logits_heads" in _outputs(discriminator) else ("code_logits",)) + \
      (("code_logits_refit",) if refit else ())


def _stack_heads(logits: tuple[np.ndarray, ...]) -> np.ndarray:
  return np.concatenate([x[:, None] if x.ndim == 2 else x for x in logits], axis=1)


def code_head_logits(discriminator: nn.Module, variables, images_u8: np.ndarray, batch_size: int = 500,
                     refit: bool = False) -> np.ndarray:
  """`N x H x K`: every Q head's logits on uint8 images, the trained heads first (one
  without several heads), then, with `refit`, the heads fitted after training."""
  return _stack_heads(features_lib.discriminator_features(
      discriminator, variables, images_u8, representation=_code_head_names(discriminator, refit),
      batch_size=batch_size))


def choose_code_head(discriminator: nn.Module, variables, images_u8: np.ndarray, batch_size: int = 500,
                     refit: bool = False) -> tuple[int, np.ndarray]:
  """`select_code_head` among `code_head_logits` on uint8 images (the training split), its
  neighbours by the contrastive projection (what training mines them by) or, without one,
  by `pre_logits`; one pass of the discriminator over the images."""
  embedding = "projection" if "projection" in _outputs(discriminator) else "pre_logits"
  *logits, embeddings = features_lib.discriminator_features(
      discriminator, variables, images_u8, representation=_code_head_names(discriminator, refit) + (embedding,),
      batch_size=batch_size)
  return select_code_head(_stack_heads(tuple(logits)), embeddings)


def refit_current(state: dict[str, Any]) -> bool:
  """Whether a train state's Q refit heads were fitted at its own step (`refit.make_refit_fn`)."""
  return "code_refit_step" in state and int(state["code_refit_step"]) == int(state["step"])


@dataclasses.dataclass(frozen=True)
class Options:
  """The protocol of the representation evaluation (docs/evaluation.md)."""
  kmeans_features: str = options.field(
      "last_conv_max", "What k-means clusters: a representation of gan_jax/evaluation/features.py.",
      features_lib.REPRESENTATIONS)
  probe_features: str = options.field("dcgan", "What the linear probe and k-NN read.", features_lib.REPRESENTATIONS)
  whiten: int = options.field(32, "k-means on the top `whiten` whitened principal components (0: standardised "
                              "features).", ">= 0")
  n_init: int = options.field(10, "k-means restarts.", "> 0")
  num_clusters: int = options.field(0, "k of k-means (0: the number of classes; set it for unlabelled data).", ">= 0")
  probe: bool = options.field(True, "Fit the linear probe and k-NN.", (True, False))
  train_split: str = options.field("train", "Where k-means and the probe are fitted.")
  test_split: str = options.field("test", "Where they are scored.")
  batch_size: int = options.field(500, "Images per feature-extraction call.", "> 0")


FIELDS = tuple(f.name for f in options.fields(Options))
SEED = 0  # Of k-means' starts and of the probe's validation split.


def get_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's representation-evaluation settings (a checked copy of `config.evals.representation`)."""
  return evaluators.settings(config.evals, "representation")


def splits(context: evaluators.Context, settings: ml_collections.ConfigDict) -> tuple[data.ImageDataset, ...]:
  """(fit, score) splits of a run: `settings.train_split` / `test_split` of `config.data` at the
  run's image size (`context.train` reused when it is that training split), or with
  `context.validation` a stratified 80% / 20% of the training split, never the test split."""
  config = context.config
  load = lambda split: data.load_split(config.data, split, image_size=config.image_size, channels=config.channels)
  train = context.train if context.train is not None and settings.train_split == "train" else \
      load(settings.train_split)
  if not context.validation:
    return train, load(settings.test_split)
  if train.labels is None:
    raise ValueError(f"{train.name} has no labels to stratify a validation split by")
  is_val = linear_probe.validation_split(train.labels, VALIDATION_FRACTION, SEED)
  part = lambda keep, name: data.ImageDataset(train.images[keep], train.labels[keep], train.num_classes,
                                              f"{train.name}[{name}]")
  held_out = round(100 * VALIDATION_FRACTION)
  return part(~is_val, f"fit {100 - held_out}%"), part(is_val, f"validation {held_out}%")


class Evaluator:
  """`config.evals.representation`: k-means, linear-probe and k-NN metrics of D's features, of
  its heads and of the controls, on two splits of the run's dataset (`splits`).

  Args:
    settings: `config.evals.representation` (`Options`), checked.
    context: the run's (`evaluators.Context`): D's module, its initial variables (the random
      control), where the splits come from, the labels a K+1 discriminator trained on.
    fit_and_score: (train, test) splits to use instead of the run's (a notebook's arrays, say).
  """

  def __init__(self, settings: ml_collections.ConfigDict, context: evaluators.Context,
               fit_and_score: tuple[data.ImageDataset, data.ImageDataset] | None = None):
    self.settings, self.discriminator, self.num_labels = settings, context.discriminator, context.num_labels
    self.train, self.test = train, test = fit_and_score or splits(context, settings)
    self.labelled = train.labels is not None and test.labels is not None
    if not self.labelled:
      logging.warning("%s has no labels: clustering accuracy, NMI, ARI and the linear probe need them; "
                      "reporting the k-means inertia only.", train.name if train.labels is None else test.name)
    self.num_clusters = settings.num_clusters or max(train.num_classes, test.num_classes)
    if not self.num_clusters:
      raise ValueError(f"{train.name} has no labels to count classes from: set "
                       "config.evals.representation.num_clusters")
    self._random_variables, self._seed = context.initial_discriminator, context.config.seed
    self._keep = context.plots  # Keep the last run's results and k-means features, for `write_plots`.
    self._controls, self._control_features, self._last = None, {}, None

  def features(self, variables) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"kmeans", "probe"}: discriminator features (float32 `N x F`) of the training and
    test images, in the representations the settings name for each."""
    names = {"kmeans": self.settings.kmeans_features, "probe": self.settings.probe_features}
    unique = tuple(dict.fromkeys(names.values()))
    train, test = (features_lib.discriminator_features(self.discriminator, variables, images, representation=unique,
                                                       batch_size=self.settings.batch_size)
                   for images in (self.train.images, self.test.images))
    by_name = dict(zip(unique, zip(train, test)))
    return {use: by_name[name] for use, name in names.items()}

  def raw_pixel_features(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pixels = features_lib.raw_pixel_features(self.train.images), features_lib.raw_pixel_features(self.test.images)
    return {"kmeans": pixels, "probe": pixels}

  def evaluate_features(self, row_features: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The protocol (`evaluation.evaluate`) on one row's {"kmeans", "probe"} features."""
    s = self.settings
    (train_x, test_x), probe_x = row_features["kmeans"], row_features["probe"]
    return protocol.evaluate(train_x, self.train.labels, test_x, self.test.labels, num_clusters=self.num_clusters,
                             whiten=s.whiten, n_init=s.n_init, seed=SEED, probe=s.probe and self.labelled,
                             probe_x=probe_x)

  def controls(self) -> dict[str, dict[str, Any]]:
    """{random_discriminator, raw_pixels} results, computed on the first call only."""
    if self._controls is None:
      self._controls = {}
      for row, features in (("random_discriminator", lambda: self.features(self._random_variables)),
                            ("raw_pixels", self.raw_pixel_features)):
        row_features = features()
        self._controls[row] = self.evaluate_features(row_features)
        if self._keep:
          self._control_features[row] = row_features["kmeans"]
    return self._controls

  def head_rows(self, variables, ema_params=None, refit: bool = False) -> dict[str, dict[str, Any]]:
    """The GAN-native rows (`HEAD_ROWS`) the discriminator has heads for, scored on the test
    split (with labels; without them there is nothing to score). With `ema_params` (the
    state's `d_ema_params`) the heads are read from D's EMA, and each row is followed by its
    twin for the online `variables`, `<row>_online` ("semi_supervised_online"). With `refit`
    (`refit_current` of the state), Q's heads fitted after training are chosen among too."""
    if ema_params is None:
      return self._head_rows(variables, refit)
    ema = self._head_rows({**variables, "params": ema_params}, refit)
    online = self._head_rows(variables, refit)
    return {name: result for row in ema for name, result in ((row, ema[row]), (f"{row}_online", online[row]))}

  def _head_rows(self, variables, refit: bool = False) -> dict[str, dict[str, Any]]:
    rows = {}
    if not self.labelled:
      return rows
    predict = lambda head: features_lib.head_predictions(self.discriminator, variables, self.test.images, head,
                                                         self.settings.batch_size)
    outputs = _outputs(self.discriminator)
    if "code_logits" in outputs and outputs["code_logits"].shape[-1]:
      choice = {}
      if "code_logits_heads" in outputs or refit:
        head, head_losses = choose_code_head(self.discriminator, variables, self.train.images, self.settings.batch_size,
                                             refit)
        per_head = code_head_logits(self.discriminator, variables, self.test.images, self.settings.batch_size,
                                    refit).argmax(-1)  # N x H
        clusters = per_head[:, head]
        choice = {"head": head, "heads": int(per_head.shape[1]), "head_losses": head_losses.tolist(),
                  # Reported only: the choice above reads no labels.
                  "head_accs": [metrics.clustering_metrics(self.test.labels, c)["acc"] for c in per_head.T]}
      else:
        clusters = predict("code_logits")
      rows["categorical_code"] = {
          "code": {**metrics.clustering_metrics(self.test.labels, clusters),
                   "contingency": metrics.contingency_matrix(self.test.labels, clusters).tolist(),
                   "num_clusters": int(outputs["code_logits"].shape[-1]),
                   "clusters_used": int(len(np.unique(clusters))), **choice}}
    if "class_logits" in outputs:
      accuracy = float(np.mean(predict("class_logits") == self.test.labels))
      rows["semi_supervised"] = {"classifier": {"test_accuracy": accuracy, "test_error": 1.0 - accuracy,
                                                "num_labels": int(self.num_labels)}}
    return rows

  def evaluate(self, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{row: result} of a train state: D's features, its heads (read from D's EMA where the
    state has one), then the controls."""
    features = self.features(state["discriminator"])
    rows = {"gan_discriminator": self.evaluate_features(features),
            **self.head_rows(state["discriminator"], state.get("d_ema_params"), refit_current(state)),
            **self.controls()}
    if self._keep:
      self._last = rows, {"gan_discriminator": features["kmeans"], **self._control_features}
    return rows

  def run(self, state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of a train state: each row's results as `<row>/<group>_<metric>`
    (e.g. ("gan_discriminator/kmeans_acc", 0.61)), then ("protocol", how they were computed)."""
    for row, result in self.evaluate(state).items():
      for group, value in result.items():
        if isinstance(value, dict):
          yield from ((f"{row}/{group}_{metric}", v) for metric, v in value.items())
        else:
          yield f"{row}/{group}", value
    yield "protocol", self.protocol()

  def protocol(self) -> dict[str, Any]:
    """How the rows are computed: the features, the splits, k-means', the probe's and k-NN's settings."""
    train, test, s = self.train, self.test, self.settings
    labelled = s.probe and self.labelled
    return {
        "kmeans_features": s.kmeans_features, "probe_features": s.probe_features,
        "train_split": train.name, "train_size": len(train), "test_split": test.name, "test_size": len(test),
        "kmeans": {"k": self.num_clusters, "n_init": s.n_init, "whiten": s.whiten, "fit_on": train.name,
                   "scored_on": test.name, "seed": SEED},
        "linear_probe": {"objective": "multinomial logistic regression, L2 chosen on validation",
                         "l2_grid": list(linear_probe.DEFAULT_L2_GRID), "validation_fraction": VALIDATION_FRACTION,
                         "seed": SEED} if labelled else None,
        "knn": {"k": min(protocol.KNN_K, len(train)), "metric": "cosine", "features": "the probe's, standardised",
                "fit_on": train.name, "scored_on": test.name} if labelled else None,
        "random_discriminator_seed": self._seed,
    }

  def write_plots(self, directory: str, step: int) -> None:
    """Of the last run (with `Context.plots`): `contingency_<row>.png` (classes x clusters, of
    k-means or of the categorical code) for each row that has one, and `embedding_<row>.png`
    (test features on two principal components, coloured by class) for each feature row."""
    rows, kmeans_features = self._last
    for row, result in rows.items():
      if "contingency" in result.get("code", {}):
        report.save_contingency_png(os.path.join(directory, f"contingency_{row}.png"), result["code"]["contingency"],
                                    f"{row.replace('_', ' ')}, step {step}: argmax Q(c | x) on test")
      if "contingency" in result.get("kmeans", {}):
        report.save_contingency_png(os.path.join(directory, f"contingency_{row}.png"),
                                    result["kmeans"]["contingency"], f"{row}, step {step}: k-means on test")
    for row, (train_x, test_x) in kmeans_features.items():
      described = row if row == "raw_pixels" else f"{row} ({self.settings.kmeans_features})"
      report.save_embedding_png(os.path.join(directory, f"embedding_{row}.png"), train_x, test_x, self.test.labels,
                                f"{described}, step {step}: PCA of test features")
