"""How good the generated images are: FID, KID, Inception Score, precision and recall.

A score means something only with its protocol, so every number this module returns
comes with one: the feature extractor and the SHA-256 of its weights, the resizing, the
numbers of real and generated images, the reference split. Scores are comparable when
their protocols are equal; papers' CIFAR-10 FIDs use `inception_v3` on 50,000 samples
against the 50,000 training images.

Extractors (`config.evals.generation.extractor`):
  inception_v3       the standard FID network (`evaluation.inception`), weights from the
                     local file `inception_weights` (docs/generation_metrics.md);
                     pool3 (2048) for FID / KID / precision-recall, its 1008 logits for IS
  domain_classifier  a classifier trained by the project on the labelled training split
                     (`evaluation.domain_classifier`): its 128 features and K logits.
                     The default, and the one for MNIST-like data

Generated images are quantised to uint8 before their features are taken, as real images
are: what is scored is what a PNG of the sample holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from typing import Any, Callable, Iterator, NamedTuple
import warnings

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.linalg
import scipy.special

from gan_jax import data
from gan_jax import files
from gan_jax import options
from gan_jax.evaluation import domain_classifier
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import features as features_lib

EXTRACTORS = ("domain_classifier", "inception_v3")
# Version of the reference-statistics files, in their names: a change of what they hold
# never reads an older file.
REFERENCE_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Options:
  """The protocol of the generation metrics (docs/generation_metrics.md)."""
  num_samples: int = options.field(10_000, "EMA samples scored by FID / KID / IS / precision-recall (0: none).",
                                   ">= 0")
  extractor: str = options.field("domain_classifier", 'Features: "domain_classifier" (trained on the labelled '
                                 'split) or "inception_v3".', EXTRACTORS)
  inception_weights: str = options.field("", 'The converted InceptionV3 weights (.npz), for extractor="inception_v3".')
  # `inception.RESIZE_METHODS` (a test checks they agree): inception.py is imported when it is used.
  resize: str = options.field("bilinear", 'To Inception\'s 299 px: "bilinear" or "pil_bicubic".',
                              ("bilinear", "pil_bicubic"))
  batch_size: int = options.field(500, "Images per generator or extractor call.", "> 0")


FIELDS = tuple(f.name for f in options.fields(Options))
# The protocol's constants, the papers': KID over 100 subsets of up to 1,000 images a side, IS
# over 10 splits, precision and recall with k = 3; up to 10,000 real features kept for KID and
# precision / recall (FID uses all); seed 0 for the generated latents, the KID subsets and the
# splits.
KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS, PR_K = 100, 1000, 10, 3
MAX_REFERENCE_FEATURES, SEED = 10_000, 0


def get_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's generation-evaluation settings (a checked copy of `config.evals.generation`)."""
  return evaluators.settings(config.evals, "generation")


def check(settings: ml_collections.ConfigDict) -> None:
  """Raises ValueError if `config.evals.generation` asks for Inception features without their weights."""
  if settings.num_samples and settings.extractor == "inception_v3" and not os.path.isfile(settings.inception_weights):
    raise ValueError(f"config.evals.generation.inception_weights={settings.inception_weights!r} is not a file; "
                     "extractor='inception_v3' needs the converted FID Inception weights (docs/generation_metrics.md)")


# ----------------------------------------------------------------------------
# The metrics, on features.
# ----------------------------------------------------------------------------


def feature_statistics(features_NxD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean D, covariance D x D) in float64, the Gaussian FID fits to a feature set."""
  x = np.asarray(features_NxD, np.float64)
  return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
  """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the Frechet distance of two Gaussians,
  with pytorch-fid's safeguards: when the product's square root is not finite (singular
  covariances, e.g. fewer samples than dimensions) `eps` is added to both diagonals; a
  negligible imaginary part (rounding) is dropped, a large one is an error."""
  mu1, mu2, sigma1, sigma2 = (np.asarray(a, np.float64) for a in (mu1, mu2, sigma1, sigma2))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(f"frechet_distance: shapes differ: mean {mu1.shape} vs {mu2.shape}, "
                     f"covariance {sigma1.shape} vs {sigma2.shape}")
  with warnings.catch_warnings():  # A singular product is handled here, as pytorch-fid does.
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
      logging.warning("frechet_distance: singular product of covariances; adding %g to the diagonals.", eps)
      offset = np.eye(sigma1.shape[0]) * eps
      covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"frechet_distance: the square root of the covariance product has an imaginary part of "
                       f"{np.max(np.abs(covmean.imag)):.3g}: the covariances are not valid (too few samples?)")
    covmean = covmean.real
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_inception_distance(real_NxD: np.ndarray, fake_MxD: np.ndarray, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel (x.y / D + 1)^3,
  averaged over `num_subsets` random subsets of `min(subset_size, N, M)` images from each
  side. Returns (mean, std over subsets). Unbiased, so it is near 0 (and may be slightly
  negative) for two samples of one distribution."""
  real, fake = np.asarray(real_NxD, np.float32), np.asarray(fake_MxD, np.float32)
  m = min(subset_size, len(real), len(fake))
  if m < 2:
    raise ValueError(f"kernel_inception_distance: needs at least 2 images a side, has {len(real)} and {len(fake)}")
  dim = real.shape[1]
  rng = np.random.default_rng(seed)
  # Dot products in float32 (fast, exact to ~1e-7 relative); cubes and sums in float64,
  # where the three large sums below cancel.
  kernel = lambda a, b: (np.asarray(a @ b.T, np.float64) / dim + 1.0) ** 3
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(len(real), m, replace=False)]
    y = fake[rng.choice(len(fake), m, replace=False)]
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
  return float(np.mean(values)), float(np.std(values))


def inception_score(logits_NxK: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """IS (Salimans et al. 2016): exp(E_x KL(p(y | x) || p(y))) on each of `splits` parts of
  the samples, p(y) the part's mean prediction. Returns (mean, std over parts); from 1
  (every image predicted alike) to K (confident, balanced predictions)."""
  logits = np.asarray(logits_NxK, np.float64)
  log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
  scores = []
  for part in np.array_split(log_p, splits):
    log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(len(part))
    scores.append(np.exp(np.mean(np.sum(np.exp(part) * (part - log_marginal), axis=1))))
  return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(a_AxD: jax.Array, b_BxD: jax.Array) -> jax.Array:
  return jnp.maximum((a_AxD ** 2).sum(1)[:, None] + (b_BxD ** 2).sum(1)[None] - 2 * a_AxD @ b_BxD.T, 0.0)


def _in_chunks(fn, x_NxD: np.ndarray, chunk: int) -> np.ndarray:
  """fn over row chunks of `x` of one shape (the last padded), so fn compiles once."""
  n = len(x_NxD)
  padded = np.concatenate([x_NxD, np.zeros((-n % chunk, x_NxD.shape[1]), x_NxD.dtype)])
  return np.concatenate([np.asarray(fn(padded[i:i + chunk])) for i in range(0, len(padded), chunk)])[:n]


def knn_radii(x_NxD: np.ndarray, k: int, chunk: int = 1000) -> np.ndarray:
  """Squared distance from each point to its k-th nearest other point of the set."""
  x = jnp.asarray(x_NxD, jnp.float32)
  # The k + 1 smallest include the point itself (distance 0).
  kth = jax.jit(lambda rows: -jax.lax.top_k(-_squared_distances(rows, x), k + 1)[0][:, -1])
  return _in_chunks(kth, np.asarray(x_NxD, np.float32), chunk)


def manifold_coverage(query_MxD: np.ndarray, support_NxD: np.ndarray, radii_N: np.ndarray,
                      chunk: int = 1000) -> float:
  """Fraction of `query` points inside some ball (support point, its k-NN radius)."""
  support, radii = jnp.asarray(support_NxD, jnp.float32), jnp.asarray(radii_N, jnp.float32)
  inside = jax.jit(lambda rows: (_squared_distances(rows, support) <= radii[None]).any(1))
  return float(np.mean(_in_chunks(inside, np.asarray(query_MxD, np.float32), chunk)))


def precision_recall(real_NxD: np.ndarray, fake_MxD: np.ndarray, k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the
  union of balls reaching every point's k-th nearest neighbour; precision = share of
  generated images on the real manifold (quality), recall = share of real images on the
  generated one (coverage)."""
  for name, x in (("real", real_NxD), ("fake", fake_MxD)):
    if len(x) <= k:
      raise ValueError(f"precision_recall: {len(x)} {name} features, need more than k={k}")
  precision = manifold_coverage(fake_MxD, real_NxD, knn_radii(real_NxD, k))
  recall = manifold_coverage(real_NxD, fake_MxD, knn_radii(fake_MxD, k))
  return precision, recall


# ----------------------------------------------------------------------------
# Extractors, reference statistics, and scoring a generator.
# ----------------------------------------------------------------------------


class Extractor(NamedTuple):
  """A feature extractor and what identifies it in a protocol."""
  name: str                # One of EXTRACTORS.
  weights_file: str
  weights_sha256: str
  resize: str              # "none" when images are read at their own size.
  features: str            # Which layer gives the features.
  fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # uint8 N x H x W x C -> (features, logits).
  info: dict[str, Any]


def cache_dir() -> str:
  """Where reference statistics and domain classifiers are kept: $GAN_JAX_CACHE, else ~/.cache/gan_jax."""
  return os.environ.get("GAN_JAX_CACHE") or os.path.expanduser("~/.cache/gan_jax")


def make_extractor(settings: ml_collections.ConfigDict, train_split: data.ImageDataset,
                   test_split: data.ImageDataset | None = None) -> Extractor:
  """The extractor `settings.extractor` names; the domain classifier is loaded from the
  cache or trained on `train_split` (its accuracy on `test_split` is recorded)."""
  if settings.extractor == "domain_classifier":
    variables, info = domain_classifier.load_or_train(cache_dir(), train_split, test_split)
    apply = domain_classifier.apply_fn(info["num_classes"], settings.batch_size)
    return Extractor("domain_classifier", info["file"], info["sha256"], "none",
                     f"penultimate ({domain_classifier.FEATURE_DIM})", lambda x: apply(variables, x), info)
  from gan_jax.evaluation import inception
  with open(settings.inception_weights, "rb") as f:
    sha256 = hashlib.sha256(f.read()).hexdigest()
  variables = inception.load_weights(settings.inception_weights)
  model = inception.InceptionV3()
  apply = jax.jit(lambda x: model.apply(variables, x))

  def fn(images_u8):
    # Full float32 convolutions: GPUs would otherwise run them in TF32, and the features
    # (so FID) would depend on the machine.
    with jax.default_matmul_precision("highest"):
      return features_lib.in_batches(lambda x: apply(inception.preprocess(x, settings.resize)), images_u8,
                                     settings.batch_size)

  return Extractor("inception_v3", os.path.abspath(settings.inception_weights), sha256, settings.resize,
                   "pool3 (2048)", fn, {})


def reference_statistics(settings: ml_collections.ConfigDict, extractor: Extractor,
                         reference: data.ImageDataset) -> dict[str, Any]:
  """{"mu", "sigma", "features", "n"} of real images, cached on disk under a name made of
  (dataset split, extractor, weights hash, resize, hash of the images): a different
  image size, subset or preprocessing is a different file, never a stale one.
  "features" holds up to `MAX_REFERENCE_FEATURES` of them (a seeded choice) for
  KID and precision/recall; the mean and covariance are of all `n`."""
  images_sha = hashlib.sha256(np.ascontiguousarray(reference.images).tobytes()).hexdigest()
  path = os.path.join(cache_dir(), "reference",
                      f"{files.safe_name(reference.name)}_{extractor.name}_{extractor.weights_sha256[:12]}_{extractor.resize}_"
                      f"{images_sha[:12]}_{MAX_REFERENCE_FEATURES}_v{REFERENCE_FORMAT}.npz")
  if os.path.isfile(path):
    with np.load(path) as f:
      return {"mu": f["mu"], "sigma": f["sigma"], "features": f["features"], "n": int(f["n"]), "file": path}
  feats = extractor.fn(reference.images)[0]
  mu, sigma = feature_statistics(feats)
  # A seeded shuffle, not a sorted subset: datasets are often stored class by class, and
  # KID and precision/recall read prefixes of this array.
  keep = np.random.default_rng(0).permutation(len(feats))[:MAX_REFERENCE_FEATURES]
  stats = {"mu": mu, "sigma": sigma, "features": feats[keep], "n": len(feats)}
  buffer = io.BytesIO()
  np.savez(buffer, **stats)
  files.write_atomic(path, buffer.getvalue())
  return {**stats, "file": path}


def generate(sample_batch: Callable[[jax.Array], jax.Array], num_samples: int, key: jax.Array) -> np.ndarray:
  """`num_samples` uint8 images from `sample_batch(key) -> images B x H x W x C in [-1, 1]`,
  called with fold_in(key, i) for batch i (one shape, so one compilation)."""
  batches, count = [], 0
  while count < num_samples:
    batches.append(data.to_uint8(sample_batch(jax.random.fold_in(key, len(batches)))))
    count += len(batches[-1])
  return np.concatenate(batches)[:num_samples]


def score(settings: ml_collections.ConfigDict, extractor: Extractor, reference: dict[str, Any],
          images_u8: np.ndarray, reference_name: str, scored: str = "generator") -> dict[str, Any]:
  """FID, KID, IS, precision and recall of `images_u8` against the reference statistics,
  with the protocol that produced them."""
  feats, logits = extractor.fn(images_u8)
  fid = frechet_distance(*feature_statistics(feats), reference["mu"], reference["sigma"])
  kid_mean, kid_std = kernel_inception_distance(reference["features"], feats, num_subsets=KID_SUBSETS,
                                                subset_size=KID_SUBSET_SIZE, seed=SEED)
  # Real image sets scored here (the floor) may be stored class by class: IS's splits and
  # precision/recall's subsets are seeded random choices, as generated samples are.
  rng = np.random.default_rng(SEED)
  is_mean, is_std = inception_score(logits[rng.permutation(len(logits))], IS_SPLITS)
  # Equal numbers a side: the manifolds' k-NN radii depend on the sample size.
  n_pr = min(len(reference["features"]), len(feats))
  precision, recall = precision_recall(reference["features"][rng.permutation(len(reference["features"]))[:n_pr]],
                                       feats[rng.permutation(len(feats))[:n_pr]], PR_K)
  return {
      "fid": fid, "kid_mean": kid_mean, "kid_std": kid_std, "is_mean": is_mean, "is_std": is_std,
      "precision": precision, "recall": recall,
      "protocol": {
          "extractor": extractor.name, "features": extractor.features, "weights_file": extractor.weights_file,
          "weights_sha256": extractor.weights_sha256, "resize": extractor.resize,
          "quantised_to_uint8": True, "reference_split": reference_name, "n_real": reference["n"],
          "n_fake": len(images_u8), "kid_subsets": KID_SUBSETS,
          "kid_subset_size": min(KID_SUBSET_SIZE, len(reference["features"]), len(feats)),
          "is_splits": IS_SPLITS, "pr_k": PR_K, "n_precision_recall": n_pr,
          "scored": scored,
          "label": f"{extractor.name}, {len(images_u8):,} of {scored} vs {reference['n']:,} of {reference_name}",
      },
  }


class GenerationEvaluator:
  """Scores generators against one real split with one extractor (both prepared once): the
  scorer that `Evaluator` (the evaluator of `config.evals.generation`) runs.

  Args:
    settings: `config.evals.generation` (`Options`).
    train_split: the labelled training split (the domain classifier is trained on it).
    reference: the split generated images are compared with.
    test_split: another real split, scored as the floor: what real images not seen by the
      reference get (`floor()`); also where the domain classifier's accuracy is measured.
  """

  def __init__(self, settings: ml_collections.ConfigDict, train_split: data.ImageDataset,
               reference: data.ImageDataset, test_split: data.ImageDataset | None = None):
    evaluators.check("generation", settings)
    self.settings, self.test_split, self.reference_name = settings, test_split, reference.name
    self.extractor = make_extractor(settings, train_split, test_split)
    self.reference = reference_statistics(settings, self.extractor, reference)

  def score(self, images_u8: np.ndarray, scored: str = "generator") -> dict[str, Any]:
    return score(self.settings, self.extractor, self.reference, images_u8, self.reference_name, scored)

  def floor(self) -> dict[str, Any] | None:
    """The scores of the real test split: what a perfect generator would get with that many samples."""
    if self.test_split is None or self.test_split.name == self.reference_name:
      return None
    return self.score(self.test_split.images, self.test_split.name)

  def run(self, sample_batch: Callable[[jax.Array], jax.Array]) -> dict[str, Any]:
    """Scores `settings.num_samples` images of `sample_batch(key)` (latents from `SEED`)."""
    key = jax.random.fold_in(jax.random.PRNGKey(SEED), 7)
    return self.score(generate(sample_batch, self.settings.num_samples, key), "EMA generator")


def make_evaluator(config: ml_collections.ConfigDict, settings: ml_collections.ConfigDict,
                   train: data.ImageDataset | None = None) -> GenerationEvaluator:
  """The run's generation evaluator on its `config.data` (`train` reused when given)."""
  load = lambda split: data.load_split(config.data, split, image_size=config.image_size, channels=config.channels)
  train = train if train is not None else load("train")
  try:  # Generated images are compared with the training split, as the papers do; the test split is the floor.
    test = load("test")
  except data.DatasetError:  # No second split (e.g. an image folder): no floor.
    test = None
  return GenerationEvaluator(settings, train, train, test)


class Evaluator:
  """`config.evals.generation`: the EMA generator's scores (`GenerationEvaluator.run`) at each
  run, and the real test split's, the floor, computed once; nothing with `num_samples` 0 or with
  `Context.validation` (which never reads the test split). Keys `<scored>/<metric>`:
  "ema_generator/fid", ..., "ema_generator/protocol", "real_floor/fid", ...
  """

  def __init__(self, settings: ml_collections.ConfigDict, context: evaluators.Context):
    off = not settings.num_samples or context.validation
    self.scorer = None if off else make_evaluator(context.config, settings, context.train)
    self._generate_fn = None if off else context.make_generate_fn(settings.batch_size)
    self._floor = None

  def run(self, state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if self.scorer is None:
      return
    yield from ((f"ema_generator/{k}", v) for k, v in self.scorer.run(self._generate_fn(state)).items())
    if self._floor is None:
      self._floor = self.scorer.floor() or {}
    yield from ((f"real_floor/{k}", v) for k, v in self._floor.items())
