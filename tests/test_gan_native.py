"""The GAN-native methods: InfoGAN's categorical code and the K+1 semi-supervised discriminator."""

import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from gan_jax import augment
from gan_jax import code_refit
from gan_jax import data
from gan_jax import losses
from gan_jax import parallel
from gan_jax import training
from gan_jax.evaluation import metrics as metrics_lib
from gan_jax.evaluation import representation
from gan_jax.evaluation import workdir as workdir_lib
from gan_jax.models import dcgan
from gan_jax.models import heads as heads_lib


def test_head_losses_against_hand_computed_values():
  loss, acc = losses.classification_loss(jnp.array([[2.0, 0.0], [0.0, 0.0]]), jnp.array([0, 1]))
  np.testing.assert_allclose(loss, (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2, rtol=1e-6)
  assert float(acc) == 0.5  # The tie [0, 0] argmaxes to class 0.
  # Unit-variance Gaussian NLL without its constant: 0.5 * ((1 - 0)^2 + (2 - 0)^2), then the batch mean.
  np.testing.assert_allclose(losses.continuous_code_loss(jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.zeros((2, 2))),
                             (2.5 + 0.0) / 2)
  # Batch means (2, 3) and (0, 1): mean over features of the squared difference, ((2)^2 + (2)^2) / 2.
  np.testing.assert_allclose(losses.feature_matching(jnp.array([[1.0, 2.0], [3.0, 4.0]]),
                                                     jnp.array([[0.0, 0.0], [0.0, 2.0]])), 4.0)


def test_mutual_information_loss_of_uniform_and_of_confident_balanced_predictions():
  loss, conditional, marginal = losses.mutual_information_loss(jnp.zeros((6, 3)))
  np.testing.assert_allclose([loss, conditional, marginal], [0.0, np.log(3), np.log(3)], atol=1e-6)
  confident = 100.0 * jax.nn.one_hot(jnp.array([0, 1, 2, 0, 1, 2]), 3)
  loss, conditional, marginal = losses.mutual_information_loss(confident)
  np.testing.assert_allclose([loss, conditional, marginal], [-np.log(3), 0.0, np.log(3)], atol=1e-5)
  collapsed = 100.0 * jax.nn.one_hot(jnp.zeros(6, int), 3)  # Confident but one cluster: no information.
  np.testing.assert_allclose(losses.mutual_information_loss(collapsed)[0], 0.0, atol=1e-5)


def test_paired_mutual_information_against_its_extremes_and_a_hand_computed_joint():
  agree = 100.0 * jax.nn.one_hot(jnp.array([0, 1, 2, 0, 1, 2]), 3)
  np.testing.assert_allclose(losses.paired_mutual_information_loss(agree, agree), -np.log(3), atol=1e-5)
  # Confident views that are independent of each other: the joint is the product of its marginals.
  other = 100.0 * jax.nn.one_hot(jnp.array([0, 1, 0, 1]), 2)
  shifted = 100.0 * jax.nn.one_hot(jnp.array([0, 0, 1, 1]), 2)
  np.testing.assert_allclose(losses.paired_mutual_information_loss(other, shifted), 0.0, atol=1e-6)
  # Two images, views (0, 0) and (0, 1): joint [[1/2, 1/4], [1/4, 0]] after symmetrising.
  a, b = 100.0 * jax.nn.one_hot(jnp.array([0, 0]), 2), 100.0 * jax.nn.one_hot(jnp.array([0, 1]), 2)
  joint = np.array([[0.5, 0.25], [0.25, 0.0]])
  m = joint.sum(1)
  expected = sum(joint[i, j] * np.log(joint[i, j] / (m[i] * m[j])) for i in range(2) for j in range(2) if joint[i, j])
  np.testing.assert_allclose(losses.paired_mutual_information_loss(a, b), -expected, atol=1e-5)


def test_neighbour_agreement_pairs_each_image_with_its_nearest_other_image():
  # Embeddings: images 0 and 1 are close, 2 and 3 are close; an image is never its own neighbour.
  embeddings = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
  p = jnp.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8]])
  q = jnp.array([[0.6, 0.4], [0.3, 0.7], [0.1, 0.9], [0.5, 0.5]])
  loss, neighbour = losses.neighbour_agreement_loss(jnp.log(p), jnp.log(q), embeddings)
  np.testing.assert_array_equal(neighbour, [1, 0, 3, 2])
  expected = -np.mean(np.log([p[0] @ q[1], p[1] @ q[0], p[2] @ q[3], p[3] @ q[2]]))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # The embedding only picks the pairs: no gradient reaches it.
  grad = jax.grad(lambda e: losses.neighbour_agreement_loss(jnp.log(p), jnp.log(q), e)[0])(embeddings)
  np.testing.assert_array_equal(grad, 0.0)
  # Confident agreement of every pair costs nothing.
  confident = 100.0 * jax.nn.one_hot(jnp.array([0, 0, 1, 1]), 2)
  np.testing.assert_allclose(losses.neighbour_agreement_loss(confident, confident, embeddings)[0], 0.0, atol=1e-6)
  # A bank of earlier images: bank entry 0 (index 4) is nearer to images 0 and 1 than they
  # are to each other; images 2 and 3 keep each other.
  bank_e = jnp.array([[1.0, 0.01], [0.0, 0.0]])
  bank_p = np.array([[0.9, 0.1], [0.5, 0.5]])
  loss, neighbour = losses.neighbour_agreement_loss(jnp.log(p), jnp.log(q), embeddings, (bank_e, jnp.log(bank_p)))
  np.testing.assert_array_equal(neighbour, [4, 4, 3, 2])
  expected = -np.mean(np.log([p[0] @ bank_p[0], p[1] @ bank_p[0], p[2] @ q[3], p[3] @ q[2]]))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # An empty (all-zero) slot is never a neighbour, though its cosine, 0, beats the batch's -1.
  opposite = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
  _, neighbour = losses.neighbour_agreement_loss(jnp.zeros((2, 2)), jnp.zeros((2, 2)), opposite,
                                                 (jnp.zeros((1, 2)), jnp.zeros((1, 2))))
  np.testing.assert_array_equal(neighbour, [1, 0])


def test_k_plus_one_logit_is_the_logsumexp_of_the_class_logits():
  d = dcgan.Discriminator(image_size=28, base_features=4, stride1_convs=False, num_classes=3)
  x = jax.random.uniform(jax.random.PRNGKey(0), (5, 28, 28, 1), minval=-1, maxval=1)
  variables = d.init(jax.random.PRNGKey(1), x)
  logits, features = d.apply(variables, x)
  assert features["class_logits"].shape == (5, 3)
  np.testing.assert_allclose(logits, jax.nn.logsumexp(features["class_logits"], axis=-1), rtol=1e-6)
  # With class logits l, D(x) = sum(exp l) / (sum(exp l) + 1): the non-saturating loss of
  # a real image with l = (0, 0, 0) is -log(3 / 4).
  np.testing.assert_allclose(losses.non_saturating_discriminator(jnp.log(jnp.array([3.0])), jnp.array([-30.0])),
                             -np.log(0.75), rtol=1e-6)


def test_grid_has_one_row_per_code_value():
  gan = training.make_gan(tiny_config("mnist_infogan"))
  z, columns = training.grid_latents(jax.random.PRNGKey(0), 25, gan)
  assert columns == 2 and z.shape == (20, 16 + 10 + 2)
  rows = np.asarray(z).reshape(10, 2, -1)
  np.testing.assert_array_equal(rows[:, :, 16:26].argmax(-1), np.repeat(np.arange(10)[:, None], 2, axis=1))
  np.testing.assert_array_equal(rows[:, :, :16], np.broadcast_to(rows[:1, :, :16], rows[:, :, :16].shape))
  assert not np.array_equal(rows[0, 0, :16], rows[0, 1, :16])  # Columns are different noise.
  np.testing.assert_array_equal(rows[:, :, 26:], 0.0)


def test_q_recovers_the_code_of_generated_images_after_a_short_run():
  config = tiny_config("mnist_infogan", total_steps=60, augment="", **{
      "contrastive.weight": 0.0, "infogan.categories": 4, "infogan.continuous": 0,
      "infogan.real_weight": 1.0, "infogan.neighbour_weight": 0.0, "infogan.neighbour_k": 0,
      "g_optimizer.learning_rate": 1e-3, "d_optimizer.learning_rate": 1e-3})
  gan = training.make_gan(config)
  mesh = parallel.make_mesh()
  state = jax.jit(functools.partial(training.init_state, gan, config))()
  images = data.load_split(config.data, "test", image_size=28, channels=1).images
  train_fn = training.make_train_fn(gan, config, mesh, num_examples=len(images))
  for _ in range(config.total_steps):
    state, metrics = train_fn(state, images)

  z, categories, _ = training.sample_latents(jax.random.PRNGKey(123), 400, gan)  # Latents not trained on.
  fakes = gan.generator.apply(state["generator"], z, train=False)
  _, features = gan.discriminator.apply(state["discriminator"], fakes)
  accuracy = float(jnp.mean(features["code_logits"].argmax(-1) == categories))
  assert accuracy > 0.4, accuracy  # Chance is 0.25 (std 0.022 over 400 samples).
  assert float(metrics["d_code_acc"][-1]) > 0.25


@pytest.fixture(scope="module")
def ssl_runs(tmp_path_factory):
  """Two 3-step semi-supervised runs on the same labelled subset; in the second, every
  image outside the subset carries a wrong label. The consistency term is on, with
  threshold 0, so D's own predictions on every real image set targets, and so is the
  neighbour term (3 neighbours per training image, mined at step 0)."""
  config = tiny_config("mnist_ssl", total_steps=3, save_every=3, sample_every=3, log_every=3,
                       **{"ssl.labels_per_class": 2, "ssl.consistency_weight": 1.0, "ssl.confidence_threshold": 0.0,
                          "ssl.neighbour_weight": 1.0, "ssl.neighbour_k": 3})
  original = data.mnist_5k
  labels = original("train")[1]
  subset = data.labelled_subset(labels, 2, config.seed, 10)
  runs = {}
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
      runs[name] = (workdir, jax.device_get(training.train_and_evaluate(config, str(workdir))))
  return config, subset, labels, runs


def test_unlabelled_images_labels_never_reach_the_loss(ssl_runs):
  _, _, _, runs = ssl_runs
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), runs["true"][1], runs["scrambled"][1])


def test_neighbour_table_is_saved_and_restored_by_eval(ssl_runs):
  config, _, _, runs = ssl_runs
  run = workdir_lib.load_run(str(runs["true"][0]))
  np.testing.assert_array_equal(run.state["neighbours"], runs["true"][1]["neighbours"])
  # Mined at step 0 (refresh 500), from the discriminator the run started with.
  images = data.load_split(config.data, "train", image_size=config.image_size, channels=config.channels).images
  expected = jax.jit(lambda d: training.mine_neighbours(run.gan, d, images, 3))(run.initial_discriminator)
  np.testing.assert_array_equal(run.state["neighbours"], expected)


def test_labelled_subset_is_saved_and_drives_the_loss(ssl_runs, tmp_path, monkeypatch):
  config, subset, labels, runs = ssl_runs
  saved = json.loads((runs["true"][0] / training.LABELLED_SUBSET_FILE).read_text())
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
  state = jax.device_get(training.train_and_evaluate(config, str(tmp_path)))
  assert not np.array_equal(state["discriminator"]["params"]["logits"]["kernel"],
                            runs["true"][1]["discriminator"]["params"]["logits"]["kernel"])


def test_labelled_subset_is_stratified_and_seeded():
  labels = np.repeat(np.arange(3), 5)
  a, b = data.labelled_subset(labels, 2, 0, 3), data.labelled_subset(labels, 2, 1, 3)
  assert np.bincount(labels[a]).tolist() == [2, 2, 2] and not np.array_equal(a, b)
  np.testing.assert_array_equal(a, data.labelled_subset(labels, 2, 0, 3))
  with pytest.raises(data.DatasetError, match=r"config.ssl.labels_per_class=6: class 0 has only 5"):
    data.labelled_subset(labels, 6, 0, 3)


@pytest.mark.parametrize("base,row,heads,refit", [("mnist_infogan", "categorical_code", 1, 0),
                                                  ("mnist_infogan", "categorical_code", 3, 0),
                                                  ("mnist_infogan", "categorical_code", 1, 2),
                                                  ("mnist_ssl", "semi_supervised", 1, 0),
                                                  ("mnist_ssl:supervised_only", "semi_supervised", 1, 0)])
def test_config_trains_and_eval_reports_its_row(base, row, heads, refit, tmp_path):
  # The K+1 GAN keeps an EMA of D: its classifier is read from it, beside the online D's.
  config = tiny_config(base, total_steps=2, **{"evals.representation.probe": False, "evals.representation.n_init": 1},
                       **({"ssl.labels_per_class": 2} if "ssl" in base else
                          {"infogan.heads": heads, "infogan.refit_heads": refit, "infogan.refit_steps": 5,
                           "infogan.refit_dim": 8}),
                       **({"d_ema_decay": 0.9} if base == "mnist_ssl" else {}))
  state = training.train_and_evaluate(config, str(tmp_path))
  heads += refit
  if refit:  # Fitted at the last step, and so chosen among by eval.py.
    assert int(state["code_refit_step"]) == 2 and representation.refit_current(state)
  metrics = workdir_lib.evaluate_workdir(str(tmp_path))
  result = metrics["representations"][row]
  if row == "categorical_code":
    assert set(result["code"]) >= {"acc", "nmi", "ari", "contingency"} and 0.0 < result["code"]["acc"] <= 1.0
    assert (tmp_path / "eval" / "step_2" / "contingency_categorical_code.png").exists()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import infogan_diagnosis  # pylint: disable=g-import-not-at-top
    diagnosis = infogan_diagnosis.diagnose(str(tmp_path), num_fakes=100)
    assert diagnosis["q_on_real"]["acc"] == result["code"]["acc"]  # The same Q on the same digits as eval.py.
    assert np.sum(diagnosis["contingency"]) == 100 and len(diagnosis["code_to_digit"]) == config.infogan.categories
    if refit:  # benchmarks/refit_heads.py fits other heads on the same frozen D and scores them as eval.py does.
      import refit_heads  # pylint: disable=g-import-not-at-top
      (swept,) = refit_heads.sweep(str(tmp_path), [refit_heads.parse_variant("3:2:8:1e-3")])
      assert len(swept["refit_accs"]) == 3 and 0 <= swept["head"] < 1 + 3  # The variant's 3, not the run's 2.
      assert all(0.0 < acc <= 1.0 for acc in swept["refit_accs"]) and 0.0 < swept["acc"] <= 1.0
      with pytest.raises(ValueError, match=r"--variants: '3:2' is not heads:steps:dim:learning_rate"):
        refit_heads.parse_variant("3:2")
    if heads > 1:  # The clusters are the chosen head's, whose figures are reported beside the others'.
      code = result["code"]
      assert code["heads"] == heads and len(code["head_losses"]) == heads and 0 <= code["head"] < heads
      assert code["head_losses"][code["head"]] == min(code["head_losses"])
      assert code["acc"] == code["head_accs"][code["head"]]
    else:
      assert "head" not in result["code"]
  else:
    assert result["classifier"]["num_labels"] == 20
    np.testing.assert_allclose(result["classifier"]["test_error"], 1 - result["classifier"]["test_accuracy"])
    assert ("classifier_online" in result) == (config.d_ema_decay > 0)
    assert result.get("classifier_online", {}).get("num_labels", 20) == 20
  assert {"gan_discriminator", "random_discriminator", "raw_pixels"} <= set(metrics["representations"])


@pytest.mark.parametrize("field,value,message", [
    ("infogan.categories", 1, r"config.infogan.categories=1"),
    ("infogan.continuous_weight", -0.1, r"config.infogan.continuous_weight=-0.1 must be >= 0"),
    ("infogan.q_input", "avg", r"config.infogan.q_input='avg'; allowed: pre_logits, last_conv_max"),
    ("infogan.pair_weight", -1.0, r"config.infogan.pair_weight=-1.0 must be >= 0"),
    ("infogan.noise_std", 0.0, r"config.infogan.noise_std=0.0 must be positive"),
    ("ssl.entropy_weight", -1.0, r"config.ssl.entropy_weight=-1.0 must be >= 0"),
    ("ssl.labels_per_class", -1, r"config.ssl.labels_per_class=-1 must be >= 0"),
    ("ssl.num_classes", 1, r"config.ssl.num_classes=1 must be >= 2"),
    ("ssl.consistency_weight", -1.0, r"config.ssl.consistency_weight=-1.0 must be >= 0"),
    ("ssl.confidence_threshold", 1.5, r"config.ssl.confidence_threshold=1.5 must be in \[0, 1\]"),
    ("ssl.labelled_augment", "flip", r"config.ssl.labelled_augment='flip': 'flip' is not known; allowed: translation"),
    ("infogan.noise_weight", -1.0, r"config.infogan.noise_weight=-1.0 must be >= 0"),
    ("infogan.neighbour_weight", -1.0, r"config.infogan.neighbour_weight=-1.0 must be >= 0"),
    ("infogan.neighbour_entropy_weight", -1.0, r"config.infogan.neighbour_entropy_weight=-1.0 must be >= 0"),
    ("infogan.neighbour_queue", 12, r"config.infogan.neighbour_queue=12 must be a multiple of config.batch_size=8"),
    ("infogan.neighbour_k", -1, r"config.infogan.neighbour_k=-1 must be >= 0"),
    ("infogan.neighbour_weight", 0.0, r"config.infogan.neighbour_k=20 needs config.infogan.neighbour_weight > 0"),
    ("infogan.consistency_weight", -1.0, r"config.infogan.consistency_weight=-1.0 must be >= 0"),
    ("ssl.neighbour_weight", 1.0, r"config.ssl.neighbour_weight=1.0 and config.ssl.neighbour_k=0: the term needs "
                                  r"mined neighbours; set both or neither"),
    ("ssl.neighbour_k", -1, r"config.ssl.neighbour_k=-1 must be >= 0"),
    ("infogan.confidence_threshold", -0.1, r"config.infogan.confidence_threshold=-0.1 must be in \[0, 1\]"),
    ("infogan.categorical_warmup", -1, r"config.infogan.categorical_warmup=-1 must be >= 0"),
    ("infogan.consistency_start", -1, r"config.infogan.consistency_start=-1 must be >= 0"),
    ("ssl.consistency_start", -1, r"config.ssl.consistency_start=-1 must be >= 0"),
    ("d_ema_decay", 1.0, r"config.d_ema_decay=1.0 must be in \[0, 1\)"),
])
def test_bad_head_settings_are_named(field, value, message):
  base = "mnist_infogan" if field.startswith("infogan") else "mnist_ssl"
  with pytest.raises(ValueError, match=message):
    training.validate_config(tiny_config(base, **{field: value}))


@pytest.mark.parametrize("overrides,message", [
    ({"infogan.neighbour_queue": 16}, r"config.infogan.neighbour_queue=16 and config.infogan.neighbour_k=5: "
                                      r"neighbours come from the queue or from the whole training set"),
    ({"infogan.neighbour_refresh": 0}, r"config.infogan.neighbour_refresh=0 must be positive"),
])
def test_bad_mined_neighbour_settings_are_named(overrides, message):
  config = tiny_config("mnist_infogan", **{"infogan.neighbour_weight": 1.0, "infogan.neighbour_k": 5, **overrides})
  with pytest.raises(ValueError, match=message):
    training.validate_config(config)


def test_mined_neighbours_need_a_training_set_larger_than_k():
  config = tiny_config("mnist_infogan", **{"infogan.neighbour_weight": 1.0, "infogan.neighbour_k": 5})
  gan = training.make_gan(config)
  with pytest.raises(ValueError, match=r"config.infogan.neighbour_k=5 needs a training set of more than 5 images "
                                       r"\(given: 5; init_state's num_examples\)"):
    jax.eval_shape(lambda: training.init_state(gan, config, num_examples=5))


def test_several_q_heads_need_a_categorical_code_and_no_queue():
  with pytest.raises(ValueError, match=r"config.infogan.heads=0 must be >= 1"):
    training.validate_config(tiny_config("mnist_infogan", **{"infogan.heads": 0}))
  with pytest.raises(ValueError, match=r"config.infogan.heads=2 needs config.infogan.categories >= 2"):
    training.validate_config(tiny_config("mnist_dcgan", **{"infogan.heads": 2, "infogan.continuous": 2}))
  with pytest.raises(ValueError, match=r"config.infogan.heads=2 and config.infogan.neighbour_queue=16: the queue"):
    training.validate_config(tiny_config("mnist_infogan", **{"infogan.heads": 2, "infogan.neighbour_k": 0,
                                                             "infogan.neighbour_queue": 16}))


def test_q_heads_each_have_their_own_layers_and_the_first_is_code_logits():
  x = jnp.zeros((2, 28, 28, 1))
  one = dcgan.Discriminator(image_size=28, base_features=8, stride1_convs=False, code_categories=5, code_continuous=2)
  three = one.clone(code_heads=3)
  v1, v3 = one.init(jax.random.PRNGKey(0), x), three.init(jax.random.PRNGKey(0), x)
  assert not {k for k in v1["params"] if k.startswith("code_")} - {"code_hidden"}  # Names as before heads existed.
  assert {"code_hidden_1", "code_1", "code_hidden_2", "code_2"} <= set(v3["params"])
  assert v3["params"]["code_2"]["kernel"].shape == (three.code_hidden, 5)  # Categorical outputs only.
  _, features = three.apply(v3, jax.random.normal(jax.random.PRNGKey(1), (2, 28, 28, 1)))
  heads = features["code_logits_heads"]
  assert heads.shape == (2, 3, 5)
  np.testing.assert_array_equal(heads[:, 0], features["code_logits"])
  assert not np.allclose(heads[:, 1], heads[:, 2])  # Initialised apart.
  assert "code_logits_heads" not in one.apply(v1, x)[1]


def test_over_heads_is_the_mean_of_each_heads_loss():
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, 3, 4))
  per_head = [losses.mutual_information_loss(logits[:, h]) for h in range(3)]
  for got, want in zip(losses.over_heads(losses.mutual_information_loss, logits), zip(*per_head)):
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-6)
  other = jax.random.normal(jax.random.PRNGKey(1), (6, 3, 4))
  np.testing.assert_allclose(losses.over_heads(losses.neighbour_consistency_loss, logits, other),
                             np.mean([losses.neighbour_consistency_loss(logits[:, h], other[:, h]) for h in range(3)]),
                             rtol=1e-6)
  assert losses.over_heads(losses.neighbour_consistency_loss, logits[:, 0], other[:, 0]) == \
      losses.neighbour_consistency_loss(logits[:, 0], other[:, 0])


def test_two_identical_q_heads_train_as_one():
  # Every categorical term is the mean over heads, so a copy of head 0 changes no loss.
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  overrides = {"infogan.neighbour_k": 0, "infogan.real_weight": 1.0, "infogan.pair_weight": 1.0}
  step = lambda gan: jax.jit(lambda s, r: training.train_step(
      s, r, gan=gan, code_weights=(1.0, 0.1), code_real_weight=1.0, code_pair_weight=1.0, code_neighbour=(1.0, 5.0),
      code_consistency=(1.0, 0.0, 0), contrastive_weight=1.0))
  one_config, two_config = tiny_config("mnist_infogan", **overrides), tiny_config("mnist_infogan", **overrides,
                                                                                  **{"infogan.heads": 2})
  one, two = training.make_gan(one_config), training.make_gan(two_config)
  state = jax.jit(lambda: training.init_state(one, one_config))()
  params = dict(state["discriminator"]["params"])
  k = one_config.infogan.categories
  params["code_hidden_1"] = params["code_hidden"]
  params["code_1"] = {"kernel": params["code"]["kernel"][:, :k], "bias": params["code"]["bias"][:k]}
  two_state = {**state, "discriminator": {**state["discriminator"], "params": params},
               "d_opt_state": two.d_tx.init(params)}
  _, m1 = step(one)(state, real)
  _, m2 = step(two)(two_state, real)
  for name in ("d_loss", "g_loss", "d_code_loss", "d_code_real_entropy", "d_code_pair_mi", "d_code_neighbour_loss",
               "d_code_consistency_loss"):
    np.testing.assert_allclose(m2[name], m1[name], rtol=2e-5, atol=1e-6, err_msg=name)
  # And an unlike second head moves the loss.
  params["code_1"] = {**params["code_1"], "bias": jax.random.normal(jax.random.PRNGKey(2), (k,))}
  _, m3 = step(two)({**two_state, "discriminator": {**state["discriminator"], "params": params}}, real)
  assert abs(float(m3["d_code_loss"]) - float(m1["d_code_loss"])) > 1e-3


def test_select_code_head_picks_the_head_neighbours_agree_on():
  rng = np.random.default_rng(0)
  groups = np.repeat(np.arange(3), 30)
  embeddings = np.eye(3)[groups] + 0.05 * rng.normal(size=(90, 3))  # Three tight clusters.
  right = 20.0 * np.eye(3)[groups]  # Confident, and the neighbours' cluster.
  noisy = 20.0 * np.eye(3)[rng.integers(0, 3, 90)]  # Confident, balanced, blind to the neighbours.
  merged = 20.0 * np.eye(3)[np.minimum(groups, 1)]  # Agrees with neighbours, but uses 2 clusters.
  head, head_losses = representation.select_code_head(np.stack([noisy, merged, right], axis=1), embeddings, k=5)
  assert head == 2 and np.argsort(head_losses).tolist() == [2, 1, 0]
  # The right head: neighbours agree with certainty (0 nats) and the mean prediction is uniform.
  np.testing.assert_allclose(head_losses[2], -5.0 * np.log(3), atol=1e-6)


def test_unknown_head_field_is_named():
  config = tiny_config("mnist_infogan")
  config.infogan.categoris = 10
  with pytest.raises(ValueError, match=r"config.infogan.categoris is not a field; allowed: categories"):
    training.validate_config(config)


def test_sngan_config_trains_with_spectral_norm_state_in_the_train_state(tmp_path):
  import tensorflow_datasets as tfds
  config = tiny_config("cifar10_sngan", total_steps=2, n_dis=2, **{
      "data.download": False, "model.generator_features": 8, "model.discriminator_features": 8})
  gan = training.make_gan(config)
  initial = jax.device_get(jax.jit(functools.partial(training.init_state, gan, config))())
  with tfds.testing.mock_data(num_examples=64):
    state = jax.device_get(training.train_and_evaluate(config, str(tmp_path)))
  stats = state["discriminator"]["batch_stats"]
  u_path = ("block1", "conv1", "sn", "conv/kernel/u")
  before, after = (functools.reduce(dict.__getitem__, u_path, s) for s in
                   (initial["discriminator"]["batch_stats"], stats))
  assert not np.allclose(before, after)  # 2 steps x n_dis 2 power iterations moved u.
  assert int(state["d_opt_state"][0].count) == 4
  # The checkpoint holds the spectral-norm state with the parameters.
  restored = jax.device_get(workdir_lib.load_run(str(tmp_path))[3])
  np.testing.assert_array_equal(functools.reduce(dict.__getitem__, u_path, restored["batch_stats"]), after)


def test_optional_terms_report_their_metrics():
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  config = tiny_config("mnist_infogan", **{"contrastive.weight": 0.0, "infogan.neighbour_k": 0})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  _, metrics = jax.jit(lambda s, r: training.train_step(s, r, gan=gan, code_weights=(1.0, 0.1),
                                                        code_real_weight=1.0, code_pair_weight=1.0,
                                                        code_neighbour=(1.0, 5.0),
                                                        code_consistency=(1.0, 0.0, 0)))(state, real)
  assert {"d_code_loss", "d_code_acc", "g_code_loss", "d_code_continuous_loss", "g_code_continuous_loss",
          "d_code_real_entropy", "d_code_real_marginal_entropy", "d_code_pair_mi", "d_code_consistency_loss",
          "d_code_consistency_kept", "d_code_neighbour_loss",
          "d_code_neighbour_marginal_entropy"} <= set(metrics)
  # Minus the log of a probability that two distributions over K clusters agree: >= 0.
  assert float(metrics["d_code_neighbour_loss"]) >= 0.0
  # Threshold 0: every real image's weak view sets a target, so the term is a cross-entropy > 0.
  assert float(metrics["d_code_consistency_kept"]) == 1.0 and float(metrics["d_code_consistency_loss"]) > 0
  # Two views of the same images through one Q: the estimate is a mutual information, in [0, log K].
  assert 0.0 <= float(metrics["d_code_pair_mi"]) <= np.log(gan.num_categories) + 1e-6

  # ClusterGAN's noise term: Q gets latent_dim outputs after the continuous codes' and
  # both players see its error.
  config = tiny_config("mnist_infogan", **{"contrastive.weight": 0.0, "infogan.noise_weight": 1.0,
                                           "infogan.neighbour_k": 0})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  _, features = gan.discriminator.apply(state["discriminator"], real[0])
  assert features["code_mean"].shape == (8, config.infogan.continuous + config.model.latent_dim)
  _, metrics = jax.jit(lambda s, r: training.train_step(s, r, gan=gan, code_weights=(1.0, 0.1),
                                                        code_noise_weight=1.0))(state, real)
  assert float(metrics["d_code_noise_loss"]) > 0 and float(metrics["g_code_noise_loss"]) > 0

  config = tiny_config("mnist_ssl", **{"contrastive.weight": 0.0})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  labelled = (real[:, :4], jnp.array([[0, 1, 2, 3]]))
  _, metrics = jax.jit(lambda s, r, l: training.train_step(s, r, gan=gan, labelled=l, entropy_weight=1.0,
                                                           class_consistency=(1.0, 0.0, 0), neighbours=r[:, ::-1],
                                                           class_neighbour_weight=1.0,
                                                           feature_matching=True))(state, real, labelled)
  assert {"d_supervised_loss", "d_supervised_acc", "d_class_entropy", "g_feature_matching",
          "d_class_consistency_loss", "d_class_consistency_kept", "d_class_neighbour_loss"} <= set(metrics)
  assert float(metrics["d_class_neighbour_loss"]) >= 0.0
  assert float(metrics["d_class_consistency_kept"]) == 1.0 and float(metrics["d_class_consistency_loss"]) > 0
  np.testing.assert_allclose(metrics["g_loss"], metrics["g_feature_matching"])


def test_categorical_warmup_and_consistency_start_scale_their_terms_by_the_step():
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  config = tiny_config("mnist_infogan", **{"contrastive.weight": 0.0, "infogan.neighbour_k": 0})
  gan = training.make_gan(config)
  initial = jax.jit(lambda: training.init_state(gan, config))()

  def d_params_after(step, **kwargs):
    state = {**initial, "step": jnp.asarray(step, initial["step"].dtype)}
    new, _ = jax.jit(lambda s, r: training.train_step(s, r, gan=gan, **kwargs))(state, real)
    return jax.device_get(new["discriminator"]["params"])

  def assert_same(a, b):
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6), a, b)

  def assert_differ(a, b):
    assert not all(jax.tree.leaves(jax.tree.map(lambda x, y: np.allclose(x, y, rtol=1e-5, atol=1e-6), a, b)))

  # Warm-up over 10 steps: the categorical term has weight 0 at step 0 and half its weight at step 5.
  assert_same(d_params_after(0, code_weights=(1.0, 0.1), code_warmup=10), d_params_after(0, code_weights=(0.0, 0.1)))
  assert_same(d_params_after(5, code_weights=(1.0, 0.1), code_warmup=10), d_params_after(5, code_weights=(0.5, 0.1)))
  assert_differ(d_params_after(5, code_weights=(1.0, 0.1), code_warmup=10), d_params_after(5, code_weights=(1.0, 0.1)))
  # Self-labelling from step 3: nothing before it (the term's extra view leaves the rest alone),
  # the whole term from it on.
  weights = dict(code_weights=(1.0, 0.1))
  without = {s: d_params_after(s, **weights) for s in (2, 3)}
  assert_same(d_params_after(2, code_consistency=(1.0, 0.0, 3), **weights), without[2])
  assert_same(d_params_after(3, code_consistency=(1.0, 0.0, 3), **weights),
              d_params_after(3, code_consistency=(1.0, 0.0, 0), **weights))
  assert_differ(d_params_after(3, code_consistency=(1.0, 0.0, 3), **weights), without[3])


def test_nearest_neighbours_by_cosine_in_blocks():
  # Rows 0 and 3 point the same way (at different lengths), 1 and 4 nearly; 2 is alone
  # (cosines -0.20 with row 1, -0.24 with 4, -0.98 with 0).
  # Blocks of 2 over 5 rows: the last block is padded, and padding never becomes a neighbour.
  e = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.2], [3.0, 0.1], [0.1, 2.0]])
  got = training.nearest_neighbours(e, k=2, block=2)
  np.testing.assert_array_equal(got, [[3, 4], [4, 3], [1, 4], [0, 4], [1, 3]])
  assert got.dtype == jnp.int32
  # One block or several: the same table.
  np.testing.assert_array_equal(training.nearest_neighbours(e, k=2, block=1024), got)


def test_neighbour_consistency_loss_against_a_hand_computed_value():
  p = jnp.array([[0.5, 0.5], [0.9, 0.1]])
  q = jnp.array([[1.0, 0.0], [0.2, 0.8]])
  # -mean(log(0.5 * 1 + 0.5 * 0), log(0.9 * 0.2 + 0.1 * 0.8)).
  expected = -(np.log(0.5) + np.log(0.26)) / 2
  np.testing.assert_allclose(losses.neighbour_consistency_loss(jnp.log(p), jnp.log(q.clip(1e-30))), expected,
                             rtol=1e-5)
  # Both sides get gradients, as in SCAN.
  grads = jax.grad(lambda a, b: losses.neighbour_consistency_loss(a, b), argnums=(0, 1))(jnp.log(p), jnp.log(q + 0.1))
  assert all(np.abs(g).sum() > 0 for g in grads)


def test_mined_neighbours_are_refreshed_on_schedule_and_fed_to_the_step():
  # The tiny config's training split, k = 3, refreshed every 2 steps: the table is mined
  # from D as it is at steps 0 and 2, and each step's neighbour term sees real images.
  config = tiny_config("mnist_infogan", **{"infogan.neighbour_weight": 1.0, "infogan.neighbour_k": 3,
                                           "infogan.neighbour_refresh": 2})
  gan = training.make_gan(config)
  mesh = parallel.make_mesh()
  train = data.load_process_share(config.data, "train", image_size=config.image_size, channels=config.channels,
                                  mesh=mesh)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  n = images.shape[0]
  state = jax.jit(lambda: training.init_state(gan, config, num_examples=n))()
  assert state["neighbours"].shape == (n, 3)
  train_fn = training.make_train_fn(gan, config, mesh, n)
  mine = jax.jit(lambda d: training.mine_neighbours(gan, d, images, 3))
  tables, discriminators = [], []
  for _ in range(3):
    discriminators.append(jax.device_get(state["discriminator"]))
    state, metrics = train_fn(state, images)
    tables.append(np.asarray(state["neighbours"]))
    assert np.isfinite(metrics["d_code_neighbour_loss"]).all()
  at_0, at_2 = np.asarray(mine(discriminators[0])), np.asarray(mine(discriminators[2]))
  assert not np.array_equal(at_0, at_2)  # Else the check below could not tell a refresh from none.
  np.testing.assert_array_equal(tables[0], at_0)
  np.testing.assert_array_equal(tables[1], at_0)  # Step 1: kept.
  np.testing.assert_array_equal(tables[2], at_2)  # Step 2: mined again.
  assert not np.any(tables[2] == np.arange(n)[:, None])  # Never an image's own index.


def test_neighbour_queue_holds_the_latest_real_images_in_order():
  # Queue of 3 batches of 8, n_dis 2: after 2 steps (4 discriminator updates) slots 0, 1, 2
  # were written by updates 0, 1, 2, and update 3 overwrote slot 0.
  config = tiny_config("mnist_infogan", n_dis=2, **{"infogan.neighbour_weight": 1.0, "infogan.neighbour_k": 0,
                                                    "infogan.neighbour_queue": 24})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  bank = state["code_bank"]
  assert bank["embeddings"].shape == (24, config.contrastive.projection_dim)
  assert bank["log_probs"].shape == (24, config.infogan.categories) and not np.any(bank["embeddings"])
  step = jax.jit(functools.partial(training.train_step, gan=gan, code_weights=(1.0, 0.1), contrastive_weight=1.0,
                                   code_neighbour=(1.0, 5.0)))
  real = jax.random.uniform(jax.random.PRNGKey(0), (2, 2, 8, 28, 28, 1), minval=-1, maxval=1)
  state, metrics = step(state, real[0])
  filled = np.linalg.norm(state["code_bank"]["embeddings"], axis=1) > 0
  np.testing.assert_array_equal(filled, [True] * 16 + [False] * 8)
  np.testing.assert_allclose(np.exp(state["code_bank"]["log_probs"][:16]).sum(1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(state["code_bank"]["embeddings"][:16], axis=1), 1.0, rtol=1e-5)
  after_one = jax.device_get(state["code_bank"])
  state, metrics = step(state, real[1])
  assert np.isfinite(float(metrics["d_code_neighbour_loss"]))
  after_two = jax.device_get(state["code_bank"])
  np.testing.assert_array_equal(after_two["embeddings"][8:16], after_one["embeddings"][8:16])  # Update 1's.
  assert np.linalg.norm(after_two["embeddings"][16:], axis=1).min() > 0  # Update 2 filled the last slot.
  assert not np.allclose(after_two["embeddings"][:8], after_one["embeddings"][:8])  # Update 3 replaced update 0's.


def test_supervised_only_control_never_sees_the_unlabelled_images():
  """The control's discriminator after a step is the same whatever the unlabelled images are:
  each term that reads them (real/fake, contrastive, entropy, consistency) is off. Threshold 0:
  at initialisation no prediction is confident, and the consistency term would vanish anyway."""
  rng = np.random.default_rng(0)
  labelled = jnp.asarray(rng.integers(0, 256, (20, 28, 28, 1), dtype=np.uint8))
  labels = jnp.arange(20, dtype=jnp.int32) % 10
  image_sets = [jnp.asarray(rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)), jnp.zeros((40, 28, 28, 1), jnp.uint8)]

  def d_params_after_one_step(base):
    """D's parameters after one step from the same initial state, for each of `image_sets`."""
    config = tiny_config(base, **{"ssl.labels_per_class": 2, "ssl.confidence_threshold": 0.0})
    gan = training.make_gan(config)
    state = jax.jit(lambda: training.init_state(gan, config))()
    train_fn = training.make_train_fn(gan, config, parallel.make_mesh(), num_examples=40)
    after = []
    for images in image_sets:
      new_state, metrics = train_fn(jax.tree.map(jnp.copy, state), images, labelled, labels)  # It donates its state.
      assert float(metrics["d_supervised_loss"][0]) > 0
      after.append(jax.tree.leaves(new_state["discriminator"]["params"]))
    return after

  control = d_params_after_one_step("mnist_ssl:supervised_only")
  for a, b in zip(*control):
    np.testing.assert_array_equal(a, b)
  # The same two image sets move the K+1 GAN's discriminator differently: the check can fail.
  gan_runs = d_params_after_one_step("mnist_ssl")
  assert not all(np.array_equal(a, b) for a, b in zip(*gan_runs))


def test_discriminator_ema_follows_the_online_discriminator_by_its_decay():
  """d_ema_params after each step = decay x itself + (1 - decay) x D's params after the step,
  with decay min(d_ema_decay, (1 + t) / (10 + t)) at step t, as the generator's EMA; without
  `d_ema_decay` the state has none."""
  assert "d_ema_params" not in jax.eval_shape(lambda: training.init_state(training.make_gan(tiny_config()),
                                                                          tiny_config()))
  config = tiny_config(d_ema_decay=0.15)
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  expected = jax.device_get(state["discriminator"]["params"])
  step = jax.jit(functools.partial(training.train_step, gan=gan, d_ema_decay=config.d_ema_decay))
  real = jax.random.uniform(jax.random.PRNGKey(0), (3, 1, 8, 28, 28, 1), minval=-1, maxval=1)
  for t in range(3):
    state, _ = step(state, real[t])
    decay = min(config.d_ema_decay, (1 + t) / (10 + t))  # 0.1 (the warm-up), then 0.15 (the cap).
    expected = jax.tree.map(lambda e, d: decay * e + (1 - decay) * d, expected,
                            jax.device_get(state["discriminator"]["params"]))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
                 jax.device_get(state["d_ema_params"]), expected)
  # The EMA is not the online D (else the check above could not fail).
  assert not np.allclose(state["d_ema_params"]["logits"]["kernel"], state["discriminator"]["params"]["logits"]["kernel"])


def first_update_key(state):
  """The key of train_step's first discriminator update, from which its augmentation streams fold."""
  key = jax.random.fold_in(state["rng"], state["step"])
  return jax.random.split(jax.random.split(key)[0], 1)[0]


def test_lean_views_judge_view_0_as_real_and_send_the_weak_view_forward_only():
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  config = tiny_config("mnist_infogan", **{"infogan.neighbour_k": 0})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  policy = ("translation", "cutout")
  step = functools.partial(training.train_step, gan=gan, augment_policy=policy, contrastive_weight=1.0,
                           code_weights=(1.0, 0.1), code_consistency=(1.0, 0.0, 0))
  lean_fn, full_fn = (jax.jit(functools.partial(step, lean_views=lean)) for lean in (True, False))
  _, lean = lean_fn(state, real)
  _, full = full_fn(state, real)

  # By hand, with train_step's keys for its one discriminator update.
  update_key = first_update_key(state)

  def judge(stream, views_policy):
    x = augment.diff_augment(jax.random.fold_in(update_key, stream), real[0], views_policy)
    return gan.discriminator.apply(state["discriminator"], x)

  view0_logits, view0 = judge(10, policy)
  own_logits, _ = judge(2, policy)
  _, weak = judge(12, ("translation",))
  # The real/fake loss sees view 0 with lean views, its own augmented copy without.
  np.testing.assert_allclose(lean["d_real"], view0_logits.mean(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(full["d_real"], own_logits.mean(), rtol=1e-4, atol=1e-5)
  assert abs(float(lean["d_real"]) - float(full["d_real"])) > 1e-6
  # The weak view sets the same targets either way (threshold 0: every image is taught).
  consistency, _ = losses.pseudo_label_loss(weak["code_logits"], view0["code_logits"], 0.0)
  for metrics in (lean, full):
    np.testing.assert_allclose(metrics["d_code_consistency_loss"], consistency, rtol=1e-4, atol=1e-5)
  # Two of the five batches through D no longer pay for a backward pass, one not even a forward one.
  flops = [float(fn.lower(state, real).cost_analysis()["flops"]) for fn in (lean_fn, full_fn)]
  assert flops[0] < 0.85 * flops[1]


def test_lean_views_need_the_views_augmentation():
  config = tiny_config("mnist_infogan", lean_views=True, augment="translation")
  with pytest.raises(ValueError, match=r"config.lean_views=True needs config.augment='translation,cutout', as "
                                       r"config.views_augment \(got 'translation'\)"):
    training.validate_config(config)
  # Views bent by `affine` must not become the real images of the real/fake loss.
  config = tiny_config("mnist_infogan", lean_views=True, views_augment="affine,translation,cutout")
  with pytest.raises(ValueError, match=r"needs config.augment='affine,translation,cutout', as config.views_augment"):
    training.validate_config(config)
  with pytest.raises(ValueError, match=r"config.views_augment='rotate': 'rotate' is not known; allowed: "
                                       r"translation, cutout, affine"):
    training.validate_config(tiny_config("mnist_infogan", views_augment="rotate"))


def test_views_are_made_by_the_views_policy():
  real = jax.random.uniform(jax.random.PRNGKey(1), (1, 8, 28, 28, 1), minval=-1, maxval=1)
  config = tiny_config("mnist_infogan", **{"infogan.neighbour_k": 0})
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  views = ("affine", "translation", "cutout")
  _, metrics = jax.jit(functools.partial(training.train_step, gan=gan, augment_policy=("translation", "cutout"),
                                         contrastive_weight=1.0, code_weights=(1.0, 0.1), views_policy=views))(
                                             state, real)
  update_key = first_update_key(state)
  projections = {}
  for policy in (views, ("translation", "cutout")):
    pair = [augment.diff_augment(jax.random.fold_in(update_key, 10 + i), real[0], policy) for i in (0, 1)]
    projections[policy] = [gan.discriminator.apply(state["discriminator"], x)[1]["projection"] for x in pair]
  loss, _ = losses.nt_xent(*projections[views], 0.2)
  np.testing.assert_allclose(metrics["d_contrastive_loss"], loss, rtol=1e-4, atol=1e-5)
  other, _ = losses.nt_xent(*projections[("translation", "cutout")], 0.2)
  assert abs(float(other) - float(loss)) > 1e-4  # The check above can tell the policies apart.


def test_refit_heads_find_separated_clusters_and_fold_the_projection_into_their_first_layer():
  # Three well-separated clusters in 40 dimensions, each image's neighbours in its own.
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 30)
  features = (rng.normal(size=(3, 40)) * 4)[labels] + rng.normal(size=(90, 40))
  neighbours = np.stack([rng.choice(np.flatnonzero((labels == y) & (np.arange(90) != i)), 5, replace=False)
                         for i, y in enumerate(labels)])
  act = heads_lib.REFIT_ACTIVATION
  dense, head_losses = code_refit.fit_heads(jax.random.key(0), jnp.asarray(features), jnp.asarray(neighbours),
                                            num_heads=2, hidden=16, categories=3, steps=300, batch_size=32,
                                            learning_rate=1e-2, entropy_weight=5.0, dim=6, act=act)
  assert dense["hidden"]["kernel"].shape == (2, 40, 16) and dense["output"]["kernel"].shape == (2, 16, 3)
  for h in range(2):
    logits = act(features @ dense["hidden"]["kernel"][h] + dense["hidden"]["bias"][h]) @ dense["output"]["kernel"][h] \
        + dense["output"]["bias"][h]
    # The returned layers read the features themselves: their loss is the one reported.
    loss = np.mean([code_refit.scan_loss(logits, logits[neighbours[:, j]], 5.0) for j in range(5)])
    np.testing.assert_allclose(loss, head_losses[h], rtol=1e-4)
    assert metrics_lib.cluster_accuracy(labels, np.asarray(logits).argmax(1)) == 1.0


def test_refit_heads_count_only_at_the_step_they_were_fitted():
  assert representation.refit_current({"step": 7, "code_refit_step": 7})
  assert not representation.refit_current({"step": 9, "code_refit_step": 7})  # Resumed and trained on.
  assert not representation.refit_current({"step": 0, "code_refit_step": -1})
  assert not representation.refit_current({"step": 7})


def test_refit_heads_need_a_categorical_code_and_positive_settings():
  with pytest.raises(ValueError, match=r"config.infogan.refit_heads=2 needs config.infogan.categories >= 2"):
    training.validate_config(tiny_config("mnist_dcgan", **{"infogan.refit_heads": 2, "infogan.continuous": 2}))
  with pytest.raises(ValueError, match=r"config.infogan.refit_heads=-1 must be >= 0"):
    training.validate_config(tiny_config("mnist_infogan", **{"infogan.refit_heads": -1}))
  with pytest.raises(ValueError, match=r"config.infogan.refit_dim=0 must be positive"):
    training.validate_config(tiny_config("mnist_infogan", **{"infogan.refit_heads": 2, "infogan.refit_dim": 0}))
