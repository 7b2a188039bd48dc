"""Populations: members equal the single runs they stand for, and everything else works per member."""

import functools
import json
import os
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, initial_population, run_steps, tiny_config
from gan_jax import loop
from gan_jax import population
from gan_jax import runs
from gan_jax import state as state_lib
from gan_jax.evaluation import run_report

ABLATIONS = {"population.seeds": 2, "population.ablations": "contrastive,adversarial"}


def test_members_are_each_seed_with_the_full_recipe_and_each_ablation():
  config = tiny_config(seed=3, **ABLATIONS)
  assert [m.name for m in population.members(config)] == [
      "seed3", "seed3-no_contrastive", "seed3-no_adversarial", "seed4", "seed4-no_contrastive", "seed4-no_adversarial"]
  weights = population.weights(config)
  np.testing.assert_array_equal(weights["d_contrastive"], [1, 0, 1, 1, 0, 1])
  np.testing.assert_array_equal(weights["d_adversarial"], [1, 1, 0, 1, 1, 0])
  np.testing.assert_array_equal(weights["g_adversarial"], weights["d_adversarial"])  # Both players' terms.
  assert population.weights(tiny_config())["d_contrastive"].shape == (1,)  # A single run: a population of one.


@pytest.mark.parametrize("spec,overrides,message", [
    ("mnist_dcgan", {"population.ablations": "contrastiv"},
     r"config.population.ablations='contrastiv': 'contrastiv' is not a term this config switches on; allowed: "
     r"adversarial, contrastive"),
    ("mnist_dcgan", {"population.ablations": "adversarial+contrastive"},
     r"without adversarial\+contrastive D learns from no term; keep one of adversarial, contrastive"),
    ("cifar10_dcgan", {"population.ablations": "adversarial"}, r"without adversarial D learns from no term"),
    ("mnist_dcgan", {"population.seeds": 0}, r"config.population.seeds=0 must be a positive integer"),
])
def test_bad_population_settings_are_named(spec, overrides, message):
  with pytest.raises(ValueError, match=message):
    loop.validate_config(tiny_config(spec, **overrides))


def test_members_equal_the_single_runs_they_stand_for():
  # Two seeds, each also without the contrastive term: members 2 and 3 (seed1) are checked,
  # so the member's seed is its own, not the population's. An ablation is a term at weight 0
  # whichever term it is (test_members_are_each_seed_with_the_full_recipe_and_each_ablation).
  config = tiny_config(**{"population.seeds": 2, "population.ablations": "contrastive"})
  trained = run_steps(config, 2)
  members = population.members(config)
  assert [m.name for m in members[2:]] == ["seed1", "seed1-no_contrastive"]
  single = population.member_config(config, members[2])
  alone = lambda config, **weights: population.unstack(run_steps(config, 2, **weights), 0)
  jax.tree.map(np.testing.assert_array_equal, population.unstack(trained, 2), alone(single))

  # The single run of the config with that term off: its weight 0 in the same program ...
  ablated = population.member_config(config, members[3])
  one = alone(ablated, weights=population.member_weights(config, members[3]))
  member = population.unstack(trained, 3)
  jax.tree.map(np.testing.assert_array_equal, member, one)
  # ... and without the contrastive block, whose D has no projection head; the layers it has
  # match the member's, which kept the head at weight 0.
  no_block = tiny_config(seed=1)
  del no_block.contrastive
  one = alone(no_block)
  for layer, params in one["discriminator"]["params"].items():
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), member["discriminator"]["params"][layer],
                 params)
  assert not np.array_equal(population.unstack(trained, 2)["discriminator"]["params"]["conv1"]["kernel"],
                            member["discriminator"]["params"]["conv1"]["kernel"])  # The check can fail.


@pytest.fixture(scope="module")
def population_run(tmp_path_factory):
  """A 4-step population (2 seeds, each also without the contrastive term) trained to step 2,
  then resumed to 4, beside the same trained straight to 4."""
  config = tiny_config(total_steps=4, **{"population.seeds": 2, "population.ablations": "contrastive",
                                          "evals.representation.probe": False, "evals.representation.n_init": 1})
  resumed, straight = tmp_path_factory.mktemp("resumed"), tmp_path_factory.mktemp("straight")
  short = tiny_config(**{**{k: config[k] for k in ("log_every", "save_every")}, "total_steps": 2,
                         "population.seeds": 2, "population.ablations": "contrastive",
                         "evals.representation.probe": False, "evals.representation.n_init": 1})
  loop.train_and_evaluate(short, str(resumed))
  return config, jax.device_get(loop.train_and_evaluate(config, str(resumed))), \
      jax.device_get(loop.train_and_evaluate(config, str(straight))), resumed


def _train(config, steps: int):
  """(host state, [host metrics of each call]) of `steps` calls of the train function."""
  from gan_jax import data, parallel, step as step_lib
  mesh = parallel.make_mesh(len(population.members(config)))
  train = data.load_process_share(config.data, "train", image_size=28, channels=1, mesh=mesh)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  gan, state = initial_population(config, images.shape[0], mesh)
  train_fn, metrics = step_lib.make_train_fn(gan, config, mesh, images.shape[0]), []
  for _ in range(steps):
    state, step_metrics = train_fn(state, population.weights(config), images)
    metrics.append(jax.device_get(step_metrics))
  return jax.device_get(state), metrics


def test_the_vmapped_population_an_accelerator_runs_agrees_with_the_unrolled_one(monkeypatch):
  # CPU unrolls the members (`population.map_members`); accelerators run one jax.vmap'd step,
  # whose grouped convolutions sum in another order. Measured here (4 members, 4 steps): every
  # metric within 1.13e-6 relative, every state leaf within 9.84e-5 absolute, about half of
  # Adam's learning rate (2e-4), the most its first steps move a parameter whose gradient
  # rounding turned from one sign to the other.
  config = tiny_config(**{"population.seeds": 2, "population.ablations": "contrastive"})
  unrolled = _train(config, 4)
  monkeypatch.setattr(population, "map_members", functools.partial(population.map_members, unroll=False))
  vmapped = _train(config, 4)
  for step_unrolled, step_vmapped in zip(unrolled[1], vmapped[1]):
    for name, value in step_unrolled.items():
      np.testing.assert_allclose(step_vmapped[name], value, rtol=1e-5, atol=1e-8, err_msg=name)
  learning_rate = config.d_optimizer.learning_rate
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=0, atol=learning_rate), unrolled[0], vmapped[0])


def test_a_resumed_population_equals_a_straight_one_and_writes_each_members_files(population_run):
  config, resumed, straight, workdir = population_run
  jax.tree.map(np.testing.assert_array_equal, resumed, straight)
  assert resumed["step"].tolist() == [4, 4, 4, 4]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]  # One checkpoint holds every member.
  names = [m.name for m in population.members(config)]
  assert sorted(os.listdir(workdir / "members")) == sorted(names)
  for name in names:
    assert (workdir / "members" / name / "samples" / "step_4.png").exists()
    assert os.listdir(workdir / "members" / name / "tensorboard")


@pytest.fixture(scope="module")
def population_report(population_run):
  """What eval.py reports (and writes) for the population run."""
  return runs.evaluate_workdir(str(population_run[3]))


def test_eval_reports_every_member_and_their_mean_and_spread_by_kind(population_run, population_report):
  _, _, _, workdir = population_run
  metrics = population_report
  assert sorted(metrics["members"]) == ["seed0", "seed0-no_contrastive", "seed1", "seed1-no_contrastive"]
  summary = metrics["summary"]
  assert list(summary) == ["gan_discriminator (full)", "gan_discriminator (no_contrastive)", "random_discriminator",
                           "raw_pixels"]
  acc = summary["gan_discriminator (full)"]["cluster ACC"]
  values = [metrics["members"][m]["representation/gan_discriminator/kmeans_acc"] for m in ("seed0", "seed1")]
  assert acc["n"] == 2 and acc["values"] == values
  np.testing.assert_allclose([acc["mean"], acc["std"]], [np.mean(values), np.std(values, ddof=1)])
  # Each seed's random D is its own control: the two differ.
  random = summary["random_discriminator"]["cluster ACC"]["values"]
  assert random[0] != random[1] or summary["random_discriminator"]["NMI"]["values"][0] != \
      summary["random_discriminator"]["NMI"]["values"][1]
  saved = json.loads((workdir / "eval" / "step_4" / "metrics.json").read_text())
  assert saved["summary"].keys() == summary.keys()
  assert (workdir / "members" / "seed1-no_contrastive" / "eval" / "step_4" / "metrics.json").exists()
  run = runs.load_run(str(workdir), member="seed1")
  assert run.config.seed == 1 and run.member.kind == "full"
  with pytest.raises(runs.EvalError, match=r"member='seed9': \S+ holds the members seed0, seed0-no_contrastive"):
    runs.load_run(str(workdir), member="seed9")


def test_the_representations_table_reads_eval_reports_beside_classifiers_on_pixels(population_run, population_report,
                                                                                   tmp_path):
  sys.path.insert(0, os.path.join(REPO, "tools"))
  import representations  # pylint: disable=g-import-not-at-top
  _, _, _, workdir = population_run
  with pytest.raises(SystemExit, match=r"--population \S+: no eval/step_<N>/metrics.json; run eval.py --workdir="):
    representations.main(["--population", f"GAN={tmp_path}", "--out_dir", str(tmp_path / "out")])
  summary = population_report["summary"]
  table = representations.main(["--population", f"GAN={workdir}", "--out_dir", str(tmp_path / "out")])
  assert list(table)[-3:] == ["GAN: trained D, without contrastive", "GAN: random D (control)", "raw pixels (control)"]
  assert table["GAN: trained D"]["cluster ACC"] == summary["gan_discriminator (full)"]["cluster ACC"]
  svm = table["raw pixels: SVM (RBF)"]["test acc"]
  assert svm["mean"] > 0.85 and svm["n"] == 2  # Real digits, one fit per seed of the population (0 and 1).
  text = (tmp_path / "out" / "representations.md").read_text()
  assert representations.ANCHOR_COLUMN in text and "LeCun et al. 1998) |" in text  # mnist_5k's anchors.
  assert json.loads((tmp_path / "out" / "representations.json").read_text()).keys() == table.keys()
  assert (tmp_path / "out" / "representations.png").read_bytes()[:4] == b"\x89PNG"


def test_a_non_finite_member_is_named_and_skipping_skips_it_alone(tmp_path, monkeypatch):
  config = tiny_config(total_steps=2, log_every=1, save_every=1, **{"population.seeds": 2})
  weights = population.weights

  def one_member_diverges(c):
    w = weights(c)
    w["d_contrastive"] = w["d_contrastive"] * np.array([1.0, np.nan], np.float32)
    return w
  monkeypatch.setattr(population, "weights", one_member_diverges)
  with pytest.raises(FloatingPointError, match=r"^non-finite d_grad_norm, d_loss, [a-z_, ]+ of member seed1 between steps 0 and 1; "
                                              r"no checkpoint was written"):
    loop.train_and_evaluate(config, str(tmp_path / "stops"))
  config.skip_nonfinite_updates = True
  state = jax.device_get(loop.train_and_evaluate(config, str(tmp_path / "skips")))
  initial = jax.device_get(jax.jit(lambda: population.init_state(state_lib.make_gan(config), config))())
  kernel = lambda s, i: s["discriminator"]["params"]["conv1"]["kernel"][i]
  np.testing.assert_array_equal(kernel(state, 1), kernel(initial, 1))  # Every D update of seed1 skipped ...
  assert not np.array_equal(kernel(state, 0), kernel(initial, 0))  # ... and seed0's taken.


def test_the_summary_has_a_row_for_the_online_d_beside_a_head_read_from_its_ema():
  def member(ema, online):  # As `evaluators.run` yields them.
    return {"step": 4, "representation/semi_supervised/classifier_test_accuracy": ema,
            "representation/semi_supervised/classifier_num_labels": 20,
            "representation/semi_supervised_online/classifier_test_accuracy": online,
            "representation/raw_pixels/kmeans_acc": 0.4, "representation/raw_pixels/kmeans_nmi": 0.4,
            "representation/raw_pixels/kmeans_ari": 0.2}
  summary = run_report.summarize({"full": [member(0.9, 0.8), member(0.7, 0.6)], "no_adversarial": [member(0.5, 0.4)]})
  assert list(summary) == ["semi_supervised (full)", "semi_supervised_online (full)", "semi_supervised (no_adversarial)",
                           "semi_supervised_online (no_adversarial)", "raw_pixels"]
  assert summary["semi_supervised (full)"]["test acc"]["values"] == [0.9, 0.7]
  assert summary["semi_supervised_online (full)"]["test acc"]["values"] == [0.8, 0.6]
  assert summary["semi_supervised_online (no_adversarial)"]["test acc"]["mean"] == 0.4
