"""Generation metrics: FID, KID, IS, precision/recall, the domain classifier and eval.py's report."""

import glob
import json
import os

import numpy as np
import pytest
import scipy.linalg

from conftest import tiny_config
from gan_jax import data
from gan_jax import loop
from gan_jax import runs
from gan_jax.evaluation import domain_classifier
from gan_jax.evaluation import generation
from gan_jax.evaluation import report


def pytorch_fid_formula(mu1, sigma1, mu2, sigma2, eps=1e-6):
  """pytorch-fid's calculate_frechet_distance, written out independently."""
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  covmean = np.real(covmean)
  return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
  # Diagonal covariances commute: FD = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  expected = 1.0 + 4.0 + (1 + 1 + 4)
  np.testing.assert_allclose(generation.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)), expected, rtol=1e-9)
  assert abs(generation.frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1))) < 1e-9


def test_frechet_distance_agrees_with_the_pytorch_fid_formula_on_random_features():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
  b = rng.normal(0.3, 1.2, size=(400, 16)) @ rng.normal(size=(16, 16))
  mine = generation.frechet_distance(*generation.feature_statistics(a), *generation.feature_statistics(b))
  reference = pytorch_fid_formula(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
  np.testing.assert_allclose(mine, reference, rtol=1e-6)


def test_frechet_distance_of_singular_covariances_is_finite_and_shapes_must_agree():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))  # Fewer samples than dimensions: rank 4.
  fd = generation.frechet_distance(*generation.feature_statistics(a), *generation.feature_statistics(b))
  assert np.isfinite(fd) and fd > 0
  with pytest.raises(ValueError, match=r"shapes differ"):
    generation.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shifted_one():
  rng = np.random.default_rng(0)
  real, same = rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
  mean, std = generation.kernel_inception_distance(real, same, num_subsets=20, subset_size=300)
  assert abs(mean) < 3 * std + 1e-3
  shifted, _ = generation.kernel_inception_distance(real, same + 0.5, num_subsets=20, subset_size=300)
  assert shifted > 10 * max(abs(mean), std)


def test_inception_score_of_uniform_and_of_confident_balanced_predictions():
  mean, std = generation.inception_score(np.zeros((100, 7)), splits=10)
  np.testing.assert_allclose([mean, std], [1.0, 0.0], atol=1e-9)
  confident = 50.0 * np.eye(5)[np.arange(100) % 5]  # Each split of 10 holds every class twice.
  mean, _ = generation.inception_score(confident, splits=10)
  np.testing.assert_allclose(mean, 5.0, rtol=1e-6)


def test_precision_and_recall_separate_quality_from_coverage():
  rng = np.random.default_rng(0)
  modes = np.eye(4) * 10
  real = np.concatenate([m + rng.normal(0, 0.3, size=(100, 4)) for m in modes])
  np.testing.assert_allclose(generation.precision_recall(real, real + 1e-4, k=3), (1.0, 1.0))
  # One of four modes, well drawn: precise, covering a quarter of the real manifold.
  one_mode = modes[0] + rng.normal(0, 0.3, size=(400, 4))
  precision, recall = generation.precision_recall(real, one_mode, k=3)
  assert precision > 0.9 and 0.15 < recall < 0.35
  far = rng.normal(100.0, 1.0, size=(400, 4))
  np.testing.assert_allclose(generation.precision_recall(real, far, k=3), (0.0, 0.0))


@pytest.mark.parametrize("field, value, message", [
    ("extractor", "inception", r"config.evals.generation.extractor='inception'; allowed: domain_classifier, "
                               r"inception_v3"),
    ("resize", "nearest", r"config.evals.generation.resize='nearest'; allowed: bilinear, pil_bicubic"),
    ("num_samples", -1, r"config.evals.generation.num_samples=-1 must be >= 0"),
    ("batch_size", 0, r"config.evals.generation.batch_size=0 must be positive"),
    ("inception_weights", "/nonexistent.npz", r"config.evals.generation.inception_weights='/nonexistent.npz' "
                                              r"is not a file"),
])
def test_bad_generation_settings_are_one_line_errors_naming_the_field(field, value, message):
  config = tiny_config(**{"evals.generation.num_samples": 100, "evals.generation.extractor": "inception_v3",
                          f"evals.generation.{field}": value})
  with pytest.raises(ValueError, match=message):
    loop.validate_config(config)


def test_unknown_generation_field_is_an_error():
  config = tiny_config()
  config.evals.generation.num_sampels = 10
  with pytest.raises(ValueError, match=r"config.evals.generation.num_sampels is not a field; allowed: .*num_samples"):
    generation.get_config(config)


def test_the_declared_resize_methods_are_inceptions():
  from gan_jax import options
  from gan_jax.evaluation import inception
  resize, = [f for f in options.fields(generation.Options) if f.name == "resize"]
  assert resize.metadata["allowed"] == inception.RESIZE_METHODS


def test_domain_classifier_is_accurate_cached_and_reused(mnist_scorer, monkeypatch):
  info = mnist_scorer.extractor.info
  assert info["test_accuracy"] > 0.94  # On mnist_5k:test (0.959 measured), measured when it was trained.
  assert os.path.isfile(info["file"]) and info["trained_on"] == "mnist_5k:train"
  monkeypatch.setattr(domain_classifier, "train", lambda *a, **k: pytest.fail("trained again instead of the cache"))
  train = data.load_split(tiny_config().data, "train", image_size=28, channels=1)
  again = generation.make_extractor(mnist_scorer.settings, train)
  assert again.weights_sha256 == mnist_scorer.extractor.weights_sha256
  images = train.images[:50]
  np.testing.assert_array_equal(again.fn(images)[0], mnist_scorer.extractor.fn(images)[0])
  # The reference statistics come back from their file, equal.
  cached = generation.reference_statistics(mnist_scorer.settings, again, train)
  assert cached["file"] == mnist_scorer.reference["file"]
  np.testing.assert_array_equal(cached["sigma"], mnist_scorer.reference["sigma"])
  # Other images are another file, never the stale one.
  other = data.ImageDataset(train.images[::-1].copy(), train.labels[::-1].copy(), 10, train.name)
  assert generation.reference_statistics(mnist_scorer.settings, again, other)["file"] != cached["file"]


def test_real_test_images_score_better_than_two_classes_of_digits_and_than_noise(mnist_scorer):
  floor = mnist_scorer.floor()
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, size=(1000, 28, 28, 1), dtype=np.uint8)
  # Only two digit classes (the 800 of the training split: precision/recall compares equal
  # numbers a side, and 800 make dense enough balls): real images, missing modes. FID rises,
  # recall falls, IS drops.
  train = data.load_split(tiny_config().data, "train", image_size=28, channels=1)
  two_classes = train.images[train.labels < 2]
  noisy = mnist_scorer.score(noise)
  partial = mnist_scorer.score(two_classes)
  assert floor["fid"] < partial["fid"] < noisy["fid"]
  assert floor["kid_mean"] < min(partial["kid_mean"], noisy["kid_mean"]) / 10
  assert floor["recall"] > 2 * partial["recall"] and partial["precision"] > 0.9
  # (Not asserted: noise's precision. The classifier maps uniform noise among the digits'
  # features, 0.87 precision measured; FID and KID above are what catch it.)
  assert floor["is_mean"] > 7 and partial["is_mean"] < 2.5
  p = floor["protocol"]
  assert (p["extractor"], p["n_real"], p["n_fake"], p["scored"]) == ("domain_classifier", 4000, 1000, "mnist_5k:test")
  assert p["reference_split"] == "mnist_5k:train" and len(p["weights_sha256"]) == 64


def test_eval_reports_generation_with_its_protocol_and_training_logs_it(tmp_path, mnist_scorer):
  del mnist_scorer  # Its classifier, in the session's cache, is reused.
  config = tiny_config(**{"evals.generation.num_samples": 200, "evals.generation.batch_size": 100, "eval_every": 4, "evals.representation.probe": False,
                          "evals.representation.n_init": 1})
  loop.train_and_evaluate(config, str(tmp_path))
  import tensorflow as tf
  logged = {value.tag for path in glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
            for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value}
  scores = ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall")
  assert {f"generation/{scored}/{m}" for scored in ("ema_generator", "real_floor") for m in scores} <= logged

  metrics = runs.evaluate_workdir(str(tmp_path), generation_samples=300)
  assert metrics["generation/ema_generator/protocol"]["n_fake"] == 300
  assert metrics["generation/ema_generator/protocol"]["scored"] == "EMA generator"
  # A 4-step tiny GAN is far from the real digits.
  assert metrics["generation/ema_generator/fid"] > 5 * metrics["generation/real_floor/fid"]
  with open(tmp_path / "eval" / "step_4" / "metrics.json") as f:
    assert json.load(f)["generation/real_floor/protocol"]["n_fake"] == 1000
  assert not [key for key in runs.evaluate_workdir(str(tmp_path), generation_samples=0, write=False)
              if key.startswith("generation/")]
  table = report.format_generation(metrics).splitlines()
  assert table[0].split() == ["generation", "FID", "KID", "IS", "precision", "recall"]
  assert [line.split()[0] for line in table[1:3]] == ["ema_generator", "real_floor"]
  with pytest.raises(runs.EvalError, match=r"--generation_samples=-5 must be >= 0"):
    runs.evaluate_workdir(str(tmp_path), generation_samples=-5)


def test_inception_extractor_reads_a_weights_file_and_scores_with_its_hash(tmp_path):
  import hashlib
  from gan_jax.evaluation import inception
  from test_inception import _random_variables  # pylint: disable=g-import-not-at-top
  variables = _random_variables()  # The network's variables, random (NumPy's; no init to compile).
  path = str(tmp_path / "inception.npz")
  inception.save_weights(variables, path)
  settings = generation.get_config(tiny_config(**{"evals.generation.extractor": "inception_v3",
                                                  "evals.generation.inception_weights": path,
                                                  "evals.generation.num_samples": 10,
                                                  "evals.generation.batch_size": 2}))
  train = data.load_split(tiny_config().data, "train", image_size=28, channels=1)
  extractor = generation.make_extractor(settings, train)
  feats, logits = extractor.fn(train.images[:4])  # Grayscale 28 px, resized to 299 x 299 x 3; 2 batches.
  assert feats.shape == (4, 2048) and logits.shape == (4, 1008)
  with open(path, "rb") as f:
    assert extractor.weights_sha256 == hashlib.sha256(f.read()).hexdigest()
  assert (extractor.resize, extractor.features) == ("bilinear", "pool3 (2048)")
