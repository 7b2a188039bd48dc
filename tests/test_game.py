"""The game evaluator: D's accuracy and adversarial loss on held-out real images against the online G's."""

import math

import jax
import numpy as np

from conftest import initial_state, tiny_config
from gan_jax import runs
from gan_jax import sampling
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import game


def test_judge_reads_the_logits_against_logit_zero():
  # Reals 2, -1 (one right), fakes -3, -1 (both right): accuracy 0.75, and the loss
  # [softplus(-2) + softplus(1)] / 2 + [softplus(-3) + softplus(-1)] / 2.
  softplus = lambda x: math.log1p(math.exp(x))
  got = game.judge(np.array([2.0, -1.0]), np.array([-3.0, -1.0]), "non_saturating")
  loss = (softplus(-2) + softplus(1)) / 2 + (softplus(-3) + softplus(-1)) / 2
  assert got["real_accuracy"] == 0.5 and got["fake_accuracy"] == 1.0 and got["accuracy"] == 0.75
  assert got["auc"] == 0.875  # Of the 4 (real, fake) pairs three are ranked right and one is a tie: 3.5 / 4.
  np.testing.assert_allclose([got["adversarial_loss"], got["chance_loss"]], [loss, 2 * math.log(2)], rtol=1e-6)
  assert got["alive"] == 1.0
  # The same logits for every image: at chance, whatever they are.
  assert game.judge(np.full(4, 0.3), np.full(4, 0.3), "non_saturating")["alive"] == 0.0
  assert game.judge(np.zeros(2), np.zeros(2), "hinge")["chance_loss"] == 2.0
  assert game.judge(np.array([np.nan, 1.0]), np.zeros(2), "non_saturating")["alive"] == 0.0  # A D gone NaN.


def test_the_evaluator_judges_held_out_real_images_against_the_online_generator():
  config = tiny_config(**{"evals.game": evaluators.block("game")})
  gan, state = initial_state(config)
  state = jax.device_get(state)
  evaluator = runs.make_evaluators(config, gan, state["discriminator"])["game"]
  assert len(evaluator.real) == 1000  # mnist_5k's test split.
  pairs = dict(evaluator.run(state))
  assert set(pairs) == {f"real_vs_generated/{k}" for k in ("real_accuracy", "fake_accuracy", "accuracy", "auc",
                                                  "adversarial_loss", "chance_loss", "alive")}
  assert pairs["real_vs_generated/alive"] == 0.0  # A D at initialisation plays no game.
  # A real/fake bias of +10 calls every image real: all reals right, every fake wrong.
  biased = {**state["discriminator"], "params": {**state["discriminator"]["params"], "logits": {
      **state["discriminator"]["params"]["logits"], "bias": np.full(1, 10.0, np.float32)}}}
  pairs = dict(evaluator.run({**state, "discriminator": biased}))
  assert (pairs["real_vs_generated/real_accuracy"], pairs["real_vs_generated/fake_accuracy"]) == (1.0, 0.0)
  assert pairs["real_vs_generated/adversarial_loss"] > 10  # softplus(10) for each fake.


def test_the_online_generator_is_the_trained_one_not_its_ema():
  config = tiny_config()
  gan, state = initial_state(config)
  state = jax.device_get(state)
  state["g_ema_params"] = jax.tree.map(np.zeros_like, state["g_ema_params"])  # An EMA that draws a flat image.
  key = jax.random.PRNGKey(0)
  online = sampling.make_generate_fn(gan, 0, 4, online=True)(state)(key)
  ema = sampling.make_generate_fn(gan, 0, 4)(state)(key)
  assert np.ptp(np.asarray(ema)) < 1e-6 < np.ptp(np.asarray(online))


def test_a_population_summary_gives_the_game_of_each_member_kind():
  from gan_jax.evaluation import report, run_report
  member = lambda accuracy, alive: {f"game/real_vs_generated/{k}": v for k, v in game.judge(
      np.zeros(1), np.zeros(1), "non_saturating").items()} | {"game/real_vs_generated/accuracy": accuracy,
                                                             "game/real_vs_generated/alive": alive}
  summary = run_report.summarize_game({"full": [member(0.7, 1.0), member(0.5, 0.0)], "no_adversarial": [{}]})
  assert list(summary) == ["full"]  # A kind whose members have no game row is left out.
  assert summary["full"]["D accuracy"]["mean"] == 0.6 and summary["full"]["alive"]["values"] == [1.0, 0.0]
  lines = report.format_game_summary(summary).splitlines()
  assert lines[1].split()[0] == "(full)" and "1 of 2" in lines[1] and "0.600 ± 0.141" in lines[1]
