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
do not change while the GAN trains, so they are computed once per evaluator.
"""

from __future__ import annotations

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
from gan_jax.terms.core import mutual_information_loss
from gan_jax.terms.infogan import neighbour_consistency_loss
from gan_jax.evaluation.protocol import evaluate
from gan_jax.evaluation import features as features_lib
from gan_jax.evaluation import linear_probe
from gan_jax.evaluation import metrics

# Share of the training split held out by `make_evaluator(validation=True)`.
VALIDATION_FRACTION = 0.2
ROWS = ("gan_discriminator", "random_discriminator", "raw_pixels")
HEAD_ROWS = ("categorical_code", "semi_supervised")
# What each scalar of `Evaluator.run` is, as a TensorBoard name: eval/<row>/<metric>.
SCALARS = (("kmeans", "acc"), ("kmeans", "nmi"), ("kmeans", "ari"), ("kmeans", "inertia"),
           ("linear_probe", "test_accuracy"), ("knn", "test_accuracy"), ("code", "acc"), ("code", "nmi"), ("code", "ari"),
           ("classifier", "test_accuracy"), ("code_online", "acc"), ("classifier_online", "test_accuracy"),
           ("code", "head"))
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


# The fields of `config.evals.representation` (defaults and comments: configs/base.py).
FIELDS = ("kmeans_features", "probe_features", "whiten", "n_init", "num_clusters", "probe", "train_split",
          "test_split", "batch_size")
SEED = 0  # Of k-means' starts and of the probe's validation split.


def get_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's representation-evaluation settings (a copy), checked."""
  settings = evals_block(config, "representation", FIELDS)
  check_config(settings)
  return settings


def evals_block(config: ml_collections.ConfigDict, name: str, fields: tuple[str, ...]) -> ml_collections.ConfigDict:
  """A copy of `config.evals.<name>`; ValueError naming a field that is unknown or missing."""
  given = dict(config.evals[name])
  for field in given:
    if field not in fields:
      raise ValueError(f"config.evals.{name}.{field} is not a field; allowed: {', '.join(fields)}")
  for field in fields:
    if field not in given:
      raise ValueError(f"config.evals.{name} lacks its field {field!r} (configs/base.py declares it)")
  return ml_collections.ConfigDict(given)


def check_config(settings: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of `config.evals.representation` that is unusable."""
  for field in ("kmeans_features", "probe_features"):
    if settings[field] not in features_lib.REPRESENTATIONS:
      raise ValueError(f"config.evals.representation.{field}={settings[field]!r}; allowed: "
                       f"{', '.join(features_lib.REPRESENTATIONS)}")
  if settings.num_clusters < 0:
    raise ValueError(f"config.evals.representation.num_clusters={settings.num_clusters!r} must be >= 0 "
                     "(0: the number of classes)")
  for field in ("n_init", "batch_size"):
    if not settings[field] > 0:
      raise ValueError(f"config.evals.representation.{field}={settings[field]!r} must be positive")
  if settings.whiten < 0:
    raise ValueError(f"config.evals.representation.whiten={settings.whiten!r} must be >= 0 (0: no whitening)")


def make_evaluator(config: ml_collections.ConfigDict, settings: ml_collections.ConfigDict,
                   discriminator: nn.Module, random_variables, train: data.ImageDataset | None = None,
                   validation: bool = False, num_labels: int = 0) -> "Evaluator":
  """The evaluator of a run: its `settings.train_split` / `test_split` of `config.data`
  at the run's image size; `train` is reused when it is that training split, already loaded.

  `validation`: score on a stratified 20% of the training split instead of the test
  split (fitting on the other 80%), for choosing recipes and settings without the test set.
  `num_labels`: how many labels a semi-supervised discriminator trained on (reported).
  """
  load = lambda split: data.load_split(config.data, split, image_size=config.image_size, channels=config.channels)
  if train is None or settings.train_split != "train":
    train = load(settings.train_split)
  if not validation:
    return Evaluator(discriminator, random_variables, train, load(settings.test_split), settings, num_labels)
  if train.labels is None:
    raise ValueError(f"{train.name} has no labels to stratify a validation split by")
  is_val = linear_probe.validation_split(train.labels, VALIDATION_FRACTION, SEED)
  part = lambda keep, name: data.ImageDataset(train.images[keep], train.labels[keep], train.num_classes,
                                              f"{train.name}[{name}]")
  held_out = round(100 * VALIDATION_FRACTION)
  return Evaluator(discriminator, random_variables, part(~is_val, f"fit {100 - held_out}%"),
                   part(is_val, f"validation {held_out}%"), settings, num_labels)


class Evaluator:
  """k-means and linear-probe metrics of discriminator features on two splits of a dataset.

  Args:
    discriminator: the linen module; its `features` dict is read by name.
    random_variables: the discriminator's variables at initialisation (the control).
    train, test: the splits (k-means and the probe are fitted on `train`, scored on `test`).
    settings: `config.evals.representation` (`FIELDS`).
    num_labels: labels a semi-supervised discriminator trained on (reported beside its accuracy).
  """

  def __init__(self, discriminator: nn.Module, random_variables, train: data.ImageDataset,
               test: data.ImageDataset, settings: ml_collections.ConfigDict, num_labels: int = 0):
    check_config(settings)
    self.discriminator, self.train, self.test, self.settings = discriminator, train, test, settings
    self.num_labels = num_labels
    self.labelled = train.labels is not None and test.labels is not None
    if not self.labelled:
      logging.warning("%s has no labels: clustering accuracy, NMI, ARI and the linear probe need them; "
                      "reporting the k-means inertia only.", train.name if train.labels is None else test.name)
    self.num_clusters = settings.num_clusters or max(train.num_classes, test.num_classes)
    if not self.num_clusters:
      raise ValueError(f"{train.name} has no labels to count classes from: set "
                       "config.evals.representation.num_clusters")
    self._random_variables = random_variables
    self._controls = None

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
    return evaluate(train_x, self.train.labels, test_x, self.test.labels, num_clusters=self.num_clusters,
                    whiten=s.whiten, n_init=s.n_init, seed=SEED, probe=s.probe and self.labelled,
                    probe_x=probe_x)

  def controls(self) -> dict[str, dict[str, Any]]:
    """{random_discriminator, raw_pixels} results, computed on the first call only."""
    if self._controls is None:
      self._controls = {"random_discriminator": self.evaluate_features(self.features(self._random_variables)),
                        "raw_pixels": self.evaluate_features(self.raw_pixel_features())}
    return self._controls

  def head_rows(self, variables, ema_params=None, refit: bool = False) -> dict[str, dict[str, Any]]:
    """The GAN-native rows (`HEAD_ROWS`) the discriminator has heads for, scored on the test
    split (with labels; without them there is nothing to score). With `ema_params` (the
    state's `d_ema_params`) the heads are read from D's EMA, and each group is also reported
    for the online `variables` as `<group>_online` ("code_online", "classifier_online").
    With `refit` (`refit_current` of the state), Q's heads fitted after training are chosen
    among too."""
    if ema_params is None:
      return self._head_rows(variables, refit)
    rows = self._head_rows({**variables, "params": ema_params}, refit)
    for row, result in self._head_rows(variables, refit).items():
      rows[row].update({f"{group}_online": value for group, value in result.items()})
    return rows

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

  def evaluate(self, variables, ema_params=None, refit: bool = False) -> dict[str, dict[str, Any]]:
    """Every row, `{row: result}`, for trained discriminator `variables`: its features,
    its heads, and the controls."""
    return {"gan_discriminator": self.evaluate_features(self.features(variables)),
            **self.head_rows(variables, ema_params, refit), **self.controls()}

  def run(self, state: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(name, value) scalars of a train state, e.g. ("eval/gan_discriminator/kmeans_acc", 0.61)."""
    for row, result in self.evaluate(state["discriminator"], state.get("d_ema_params"), refit_current(state)).items():
      for group, metric in SCALARS:
        if metric in result.get(group, {}):
          yield f"eval/{row}/{'probe' if group == 'linear_probe' else group}_{metric}", result[group][metric]
