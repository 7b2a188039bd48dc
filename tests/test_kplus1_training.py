"""The K+1 semi-supervised GAN trained end to end: which labels reach the loss, its control, eval.py's row."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import initial_population, initial_state, jit_step, tiny_config
from gan_jax import data
from gan_jax import loop
from gan_jax import parallel
from gan_jax import population
from gan_jax import runs
from gan_jax import step as step_lib
from gan_jax.evaluation import report


@pytest.fixture(scope="module")
def kplus1_runs(tmp_path_factory):
  """Two 3-step K+1 runs on the same labelled subset; in the second, every image outside the
  subset carries a wrong label. The consistency term is on, with threshold 0, so D's own
  predictions on every real image set targets."""
  config = tiny_config("mnist_ssl", total_steps=3, save_every=3, sample_every=3, log_every=3,
                       **{"kplus1.labels_per_class": 2, "kplus1.consistency.threshold": 0.0})
  original = data.mnist_5k
  labels = original("train")[1]
  subset = data.labelled_subset(labels, 2, config.seed, 10)
  trained = {}
  for name, scramble in (("true", False), ("scrambled", True)):
    workdir = tmp_path_factory.mktemp(name)

    def mnist_5k(split, scramble=scramble):
      images, y = original(split)
      if scramble and split == "train":
        outside = np.setdiff1d(np.arange(len(y)), subset)
        y = y.copy()
        y[outside] = (y[outside] + 1 + np.arange(len(outside)) % 9) % 10  # Never the true class.
      return images, y

    with pytest.MonkeyPatch.context() as m:
      m.setattr(data, "mnist_5k", mnist_5k)
      # Which images are labelled is fixed (it is drawn from the true labels above): the
      # test is what the training loss reads, not how the subset is drawn.
      m.setattr(data, "labelled_subset", lambda *a, **k: subset)
      trained[name] = (workdir, jax.device_get(loop.train_and_evaluate(config, str(workdir))))
  return config, subset, labels, trained


def test_unlabelled_images_labels_never_reach_the_loss(kplus1_runs):
  _, _, _, trained = kplus1_runs
  jax.tree.map(np.testing.assert_array_equal, trained["true"][1], trained["scrambled"][1])


def test_labelled_subset_is_saved_and_drives_the_loss(kplus1_runs, tmp_path, monkeypatch):
  config, subset, labels, trained = kplus1_runs
  saved = json.loads((trained["true"][0] / runs.LABELLED_SUBSET_FILE).read_text())
  assert saved["indices"] == subset.tolist() and saved["labels"] == labels[subset].tolist()
  assert saved["num_labels"] == 20
  # Control: a changed label inside the subset does change training.
  original = data.mnist_5k

  def mnist_5k(split):
    images, y = original(split)
    if split == "train":
      y = y.copy()
      y[subset[0]] = (y[subset[0]] + 1) % 10
    return images, y
  monkeypatch.setattr(data, "mnist_5k", mnist_5k)
  monkeypatch.setattr(data, "labelled_subset", lambda *a, **k: subset)
  state = jax.device_get(loop.train_and_evaluate(config, str(tmp_path)))
  assert not np.array_equal(state["discriminator"]["params"]["logits"]["kernel"],
                            trained["true"][1]["discriminator"]["params"]["logits"]["kernel"])


def test_labelled_subset_is_stratified_and_seeded():
  labels = np.repeat(np.arange(3), 5)
  a, b = data.labelled_subset(labels, 2, 0, 3), data.labelled_subset(labels, 2, 1, 3)
  assert np.bincount(labels[a]).tolist() == [2, 2, 2] and not np.array_equal(a, b)
  np.testing.assert_array_equal(a, data.labelled_subset(labels, 2, 0, 3))
  with pytest.raises(data.DatasetError, match=r"config.kplus1.labels_per_class=6: class 0 has only 5"):
    data.labelled_subset(labels, 6, 0, 3)


def test_kplus1_terms_report_their_metrics_and_the_generator_matches_features():
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  config = tiny_config("mnist_ssl", **{"kplus1.consistency.threshold": 0.0})
  gan, state = initial_state(config)
  _, metrics = jit_step(config, gan)(state, real, labelled=real[:, :4], labels=jnp.array([[0, 1, 2, 3]]))
  assert {"d_supervised", "d_supervised_acc", "d_class_entropy", "g_feature_matching",
          "d_class_consistency_loss", "d_class_consistency_kept"} <= set(metrics)
  assert float(metrics["d_class_consistency_kept"]) == 1.0 and float(metrics["d_class_consistency_loss"]) > 0
  np.testing.assert_allclose(metrics["g_loss"], metrics["g_feature_matching"])


def test_supervised_only_control_never_sees_the_unlabelled_images():
  """The control's discriminator after a step is the same whatever the unlabelled images are:
  each term that reads them (real/fake at weight 0, contrastive, entropy, consistency) is off."""
  rng = np.random.default_rng(0)
  labelled = jnp.asarray(rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8))
  labels = jnp.arange(20, dtype=jnp.int32) % 10
  image_sets = [jnp.asarray(rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)), jnp.zeros((40, 28, 28, 1), jnp.uint8)]

  def d_params_after_one_step(spec):
    """D's parameters after one step from the same initial state, for each of `image_sets`."""
    config = tiny_config(spec, **{"kplus1.labels_per_class": 2})
    if "consistency" in config.kplus1:
      config.kplus1.consistency.threshold = 0.0  # Every real image sets a target, from the first step.
    gan, state = initial_population(config)
    train_fn = step_lib.make_train_fn(gan, config, parallel.make_mesh(), num_examples=40)
    after = []
    for images in image_sets:  # A population of one: its labelled subset has a member axis too.
      new_state, metrics = train_fn(jax.tree.map(jnp.copy, state), population.weights(config), images, labelled[None],
                                    labels[None])  # It donates its state.
      assert float(metrics["d_supervised"][0, 0]) > 0  # Step 0, the population's one member.
      after.append(jax.tree.leaves(new_state["discriminator"]["params"]))
    return after

  control = d_params_after_one_step("mnist_ssl:supervised_only")
  for a, b in zip(*control):
    np.testing.assert_array_equal(a, b)
  # The same two image sets move the K+1 GAN's discriminator differently: the check can fail.
  gan_runs = d_params_after_one_step("mnist_ssl")
  assert not all(np.array_equal(a, b) for a, b in zip(*gan_runs))


@pytest.mark.parametrize("spec", ["mnist_ssl", "mnist_ssl:supervised_only"])
def test_kplus1_trains_and_eval_reports_its_row(spec, tmp_path):
  # The K+1 GAN keeps an EMA of D: its classifier is read from it, beside the online D's.
  config = tiny_config(spec, total_steps=2, **{"evals.representation.probe": False, "evals.representation.n_init": 1,
                                               "kplus1.labels_per_class": 2},
                       **({"d_ema_decay": 0.9} if spec == "mnist_ssl" else {}))
  loop.train_and_evaluate(config, str(tmp_path))
  metrics = runs.evaluate_workdir(str(tmp_path))
  assert metrics["representation/semi_supervised/classifier_num_labels"] == 20
  np.testing.assert_allclose(metrics["representation/semi_supervised/classifier_test_error"],
                             1 - metrics["representation/semi_supervised/classifier_test_accuracy"])
  # With an EMA of D, the online D's row follows the EMA's.
  online = ["semi_supervised", "semi_supervised_online"] if config.d_ema_decay > 0 else ["semi_supervised"]
  assert list(report.rows(metrics)) == ["gan_discriminator", *online, "random_discriminator", "raw_pixels"]
  assert metrics.get("representation/semi_supervised_online/classifier_num_labels", 20) == 20
