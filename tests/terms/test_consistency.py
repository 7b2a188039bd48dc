"""FixMatch's consistency term."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from conftest import judged
from gan_jax.terms import consistency

# Row 0's weak view is confident (p(class 1) = e^5 / (e^5 + 2) > 0.95); row 1's is uniform.
WEAK = jnp.array([[0.0, 5.0, 0.0], [1.0, 1.0, 1.0]])
STRONG = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 9.0]])
# Row 0 is taught class 1: -log softmax([1, 2, 3])[1]; row 1 adds nothing but counts in the mean.
EXPECTED = -(2.0 - math.log(math.exp(1) + math.exp(2) + math.exp(3))) / 2


def test_pseudo_label_loss_keeps_only_confident_weak_predictions():
  loss, kept = consistency.pseudo_label_loss(WEAK, STRONG, threshold=0.95)
  np.testing.assert_allclose(loss, EXPECTED, rtol=1e-6)
  np.testing.assert_allclose(kept, 0.5)
  # The targets carry no gradient: only the strong view's logits are trained.
  grad_weak, grad_strong = jax.grad(lambda w, s: consistency.pseudo_label_loss(w, s, 0.95)[0],
                                    argnums=(0, 1))(WEAK, STRONG)
  np.testing.assert_array_equal(grad_weak, 0.0)
  assert np.abs(grad_strong[0]).sum() > 0 and np.all(grad_strong[1] == 0)
  # Threshold 0 keeps every row, the uniform one taught its first class (argmax of a tie).
  np.testing.assert_allclose(consistency.pseudo_label_loss(WEAK, STRONG, 0.0)[1], 1.0)


def test_consistency_term_teaches_view_0_the_weak_views_class_from_its_start_step():
  for head, feature in (("code", "code_logits"), ("class", "class_logits")):
    batches = {"view0": {"logits": jnp.zeros(2), feature: STRONG}, "weak": {"logits": jnp.zeros(2), feature: WEAK}}
    loss, metrics = consistency.consistency_term(judged(batches, step=3), head=head, threshold=0.95, start=3)
    np.testing.assert_allclose([loss, metrics[f"{head}_consistency_loss"]], [EXPECTED] * 2, rtol=1e-6)
    np.testing.assert_allclose(metrics[f"{head}_consistency_kept"], 0.5)
    # Before its start the term counts 0, but still reports the loss it would have.
    loss, metrics = consistency.consistency_term(judged(batches, step=2), head=head, threshold=0.95, start=3)
    assert float(loss) == 0.0
    np.testing.assert_allclose(metrics[f"{head}_consistency_loss"], EXPECTED, rtol=1e-6)
