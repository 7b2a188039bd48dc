"""InfoGAN's code terms and SCAN's neighbour term, and the clustering losses they share."""

import jax
import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import core
from gan_jax.terms import infogan


def test_classification_and_continuous_code_losses_against_hand_computed_values():
  loss, acc = core.classification_loss(jnp.array([[2.0, 0.0], [0.0, 0.0]]), jnp.array([0, 1]))
  np.testing.assert_allclose(loss, (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2, rtol=1e-6)
  assert float(acc) == 0.5  # The tie [0, 0] argmaxes to class 0.
  # Unit-variance Gaussian NLL without its constant: 0.5 * ((1 - 0)^2 + (2 - 0)^2), then the batch mean.
  np.testing.assert_allclose(infogan.continuous_code_loss(jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.zeros((2, 2))),
                             (2.5 + 0.0) / 2)


def test_mutual_information_loss_of_uniform_and_of_confident_balanced_predictions():
  loss, conditional, marginal = core.mutual_information_loss(jnp.zeros((6, 3)))
  np.testing.assert_allclose([loss, conditional, marginal], [0.0, np.log(3), np.log(3)], atol=1e-6)
  confident = 100.0 * jax.nn.one_hot(jnp.array([0, 1, 2, 0, 1, 2]), 3)
  loss, conditional, marginal = core.mutual_information_loss(confident)
  np.testing.assert_allclose([loss, conditional, marginal], [-np.log(3), 0.0, np.log(3)], atol=1e-5)
  collapsed = 100.0 * jax.nn.one_hot(jnp.zeros(6, int), 3)  # Confident but one cluster: no information.
  np.testing.assert_allclose(core.mutual_information_loss(collapsed)[0], 0.0, atol=1e-5)


def test_neighbour_consistency_loss_against_a_hand_computed_value():
  p = jnp.array([[0.5, 0.5], [0.9, 0.1]])
  q = jnp.array([[1.0, 0.0], [0.2, 0.8]])
  # -mean(log(0.5 * 1 + 0.5 * 0), log(0.9 * 0.2 + 0.1 * 0.8)).
  expected = -(np.log(0.5) + np.log(0.26)) / 2
  np.testing.assert_allclose(infogan.neighbour_consistency_loss(jnp.log(p), jnp.log(q.clip(1e-30))), expected,
                             rtol=1e-5)
  # Both sides get gradients, as in SCAN.
  grads = jax.grad(infogan.neighbour_consistency_loss, argnums=(0, 1))(jnp.log(p), jnp.log(q + 0.1))
  assert all(np.abs(g).sum() > 0 for g in grads)


def test_over_heads_is_the_mean_of_each_heads_loss():
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, 3, 4))
  per_head = [core.mutual_information_loss(logits[:, h]) for h in range(3)]
  for got, want in zip(core.over_heads(core.mutual_information_loss, logits), zip(*per_head)):
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-6)
  other = jax.random.normal(jax.random.PRNGKey(1), (6, 3, 4))
  np.testing.assert_allclose(core.over_heads(infogan.neighbour_consistency_loss, logits, other),
                             np.mean([infogan.neighbour_consistency_loss(logits[:, h], other[:, h]) for h in range(3)]),
                             rtol=1e-6)
  assert core.over_heads(infogan.neighbour_consistency_loss, logits[:, 0], other[:, 0]) == \
      infogan.neighbour_consistency_loss(logits[:, 0], other[:, 0])


def test_code_terms_read_q_on_the_generated_images():
  q = jnp.array([[2.0, 0.0, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0]])  # 2 categories, then 2 continuous codes' means.
  d = judged({"real": {"logits": jnp.zeros(1), "code_logits": jnp.full((1, 2), jnp.nan), "code_mean": jnp.zeros((1, 2))},
              "fake": {"logits": jnp.zeros(2), "code_logits": q[:, :2], "code_mean": q[:, 2:]}},
             categories=jnp.array([0, 1]), continuous=jnp.array([[0.5, 0.5], [0.0, 1.0]]))
  loss, metrics = infogan.categorical_term(d)
  np.testing.assert_allclose(loss, (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2, rtol=1e-6)
  assert float(metrics["code_acc"]) == 0.5
  loss, metrics = infogan.continuous_term(d)
  # 0.5 x ((0.5 - 0.5)^2 + (-0.5 - 0.5)^2) and 0.5 x (0 + 1), averaged.
  np.testing.assert_allclose(loss, 0.5, rtol=1e-6)


def test_neighbours_term_is_the_agreement_with_each_neighbour_less_the_weighted_marginal_entropy():
  p = jnp.array([[0.5, 0.5], [0.9, 0.1]])
  q = jnp.array([[1.0, 0.0], [0.2, 0.8]]).clip(1e-30)
  d = judged({"view0": {"logits": jnp.zeros(2), "code_logits": jnp.log(p)},
              "neighbour": {"logits": jnp.zeros(2), "code_logits": jnp.log(q)}})
  loss, metrics = infogan.neighbours_term(d, entropy_weight=5.0)
  agreement = -(np.log(0.5) + np.log(0.26)) / 2
  mean = np.array([0.7, 0.3])  # View 0's mean prediction.
  entropy = -np.sum(mean * np.log(mean))
  np.testing.assert_allclose([metrics["code_neighbour_agreement"], metrics["code_neighbour_marginal_entropy"]],
                             [agreement, entropy], rtol=1e-5)
  np.testing.assert_allclose(loss, agreement - 5.0 * entropy, rtol=1e-5)
