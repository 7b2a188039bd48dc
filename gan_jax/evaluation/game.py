"""The game evaluator: whether the adversarial game is being played.

A discriminator that gives every image the same logit has its adversarial loss at the value of
logit 0 (2 ln 2 = 1.386 for the non-saturating loss) and learns nothing from the game; an
ablation of the adversarial term then answers nothing. This evaluator lets D, at the state's
params, judge held-out real images (the test split; with `Context.validation`, the representation
evaluator's held-out 20% of the training split, which training saw) against as many fresh images
of the online generator, the one D plays against, each augmented as D sees them in the game
(`config.augment`; a D trained on DiffAugment's images may call every clean image real). Keys
`real_vs_generated/<metric>`:

  real_accuracy, fake_accuracy  the share of each on the right side of logit 0
  accuracy                      their mean (0.5: chance)
  auc                           the area under the ROC curve of the logits: how well they rank
                                real above generated, at any threshold (0.5: chance)
  adversarial_loss              D's loss of the run's `adversarial.loss` on them
  chance_loss                   that loss at logit 0 for every image
  alive                         1.0 where accuracy > `ALIVE_ACCURACY` and the loss is below the
                                chance loss by more than `ALIVE_MARGIN`, else 0.0

In training it runs every `eval_every` steps, so the last evaluations say whether the game was
alive over the last stretch of training; the step's own `d_adversarial` and `d_accuracy` say it
on the (augmented) training batches.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import metrics

from gan_jax import augment
from gan_jax import data
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import report
from gan_jax.evaluation import representation
from gan_jax.terms.adversarial import LOSSES

# Up to 1,000 held-out real images and as many generated ones, 500 a call: the accuracy's
# standard error at chance is then 0.011, well inside the criterion's margin.
NUM_IMAGES, BATCH_SIZE = 1000, 500
# The criterion: D beats chance on held-out images, and its loss is clearly below the chance loss.
ALIVE_ACCURACY, ALIVE_MARGIN = 0.6, 0.05
SEED = 0  # Of the generated images' latents.


@dataclasses.dataclass(frozen=True)
class Options:
  """Whether the game is alive: D judges held-out real images against fresh images of the online
  generator (a second of D's and G's forward passes)."""


def judge(logits_real: np.ndarray, logits_fake: np.ndarray, loss: str) -> dict[str, float]:
  """The metrics of D's real/fake logits on real and generated images (module docstring)."""
  real, fake = jnp.asarray(logits_real, jnp.float32), jnp.asarray(logits_fake, jnp.float32)
  adversarial_loss = float(LOSSES[loss].discriminator(real, fake))
  chance = float(LOSSES[loss].discriminator(jnp.zeros(1), jnp.zeros(1)))
  real_accuracy, fake_accuracy = float((real > 0).mean()), float((fake < 0).mean())
  accuracy = (real_accuracy + fake_accuracy) / 2
  finite = bool(np.isfinite(np.r_[real, fake]).all())  # A D gone non-finite plays no game, and ranks nothing.
  auc = metrics.roc_auc_score(np.r_[np.ones(len(real)), np.zeros(len(fake))], np.r_[real, fake]) if finite else np.nan
  alive = finite and accuracy > ALIVE_ACCURACY and adversarial_loss < chance - ALIVE_MARGIN
  return {"real_accuracy": real_accuracy, "fake_accuracy": fake_accuracy, "accuracy": accuracy, "auc": float(auc),
          "adversarial_loss": adversarial_loss, "chance_loss": chance, "alive": float(alive)}


class Evaluator:
  """`config.evals.game` (module docstring)."""

  def __init__(self, settings: ml_collections.ConfigDict, context: evaluators.Context):
    del settings  # No options.
    self.loss = context.config.adversarial.loss
    # The representation evaluator's scoring split (its declared one where the run has no block).
    splits = context.config.evals.get("representation") or evaluators.block("representation")
    _, held_out = representation.splits(context, splits)
    if not len(held_out.images):
      raise ValueError(f"config.evals.game: {held_out.name} holds no images to judge")
    order = np.random.default_rng(SEED).permutation(len(held_out.images))  # Of every class, on a sorted split.
    self.real = held_out.images[np.sort(order[:NUM_IMAGES])]
    self._generate_fn = context.make_generate_fn(BATCH_SIZE, online=True)
    discriminator, policy = context.discriminator, augment.parse_policy(context.config.augment)
    self._logits = jax.jit(lambda variables, key, x: discriminator.apply(
        variables, augment.diff_augment(key, x, policy))[0])

  def run(self, state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    variables, size, batches = state["discriminator"], BATCH_SIZE, -(-len(self.real) // BATCH_SIZE)
    draw = lambda kind, i: jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(SEED), kind), i)
    real = np.concatenate([self._logits(variables, draw(0, i), data.to_model_range(self.real[i * size:(i + 1) * size]))
                           for i in range(batches)])
    sample = self._generate_fn(state)
    fake = np.concatenate([self._logits(variables, draw(1, i), sample(draw(2, i))) for i in range(batches)])
    fake = fake[:len(self.real)]
    for key, value in judge(real, fake, self.loss).items():
      yield f"{report.GAME_ROW}/{key}", value
