"""InfoGAN's terms (Chen et al. 2016) and SCAN's neighbour term (Van Gansbeke et al. 2020), on
the Q head that D carries.

InfoGAN: G's input holds a categorical code and continuous codes, and Q must recover them
from the generated images; the term joins both players' losses. SCAN: Q's clusters of real
images must agree between each image and one of its nearest training images (mined by D's
embedding, `neighbours`), against the entropy of the batch's mean prediction.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import options
from gan_jax.terms.core import Head, Judged, Term, classification_loss, code_logits, mutual_information_loss, over_heads


def continuous_code_loss(mean_BxC: jax.Array, codes_BxC: jax.Array) -> jax.Array:
  """InfoGAN's term for continuous codes: the negative log-likelihood of the codes under
  Q's unit-variance Gaussian (constant dropped), summed over codes, batch mean."""
  return 0.5 * jnp.mean(jnp.sum((mean_BxC - codes_BxC) ** 2, axis=-1))


def neighbour_consistency_loss(logits_BxK: jax.Array, neighbour_logits_BxK: jax.Array) -> jax.Array:
  """SCAN's consistency term for given pairs: row i of `neighbour_logits` is Q's prediction
  on a neighbour of image i (mined beforehand); -mean_i log <p(c | x_i), p(c | x_nbr(i))>,
  both sides with gradients (stable where both are confident). Pair it with a
  marginal-entropy term, else one cluster for everything minimises it."""
  log_p, log_q = jax.nn.log_softmax(logits_BxK), jax.nn.log_softmax(neighbour_logits_BxK)
  return -jnp.mean(jax.nn.logsumexp(log_p + log_q, axis=-1))


def categorical_term(d: Judged):
  """Cross-entropy of Q (every head) on the generated images against their categorical codes."""
  q = code_logits(d.features)[d.parts["fake"]]
  loss, acc = over_heads(lambda logits: classification_loss(logits, d.batch["categories"]), q)
  return loss, {"code_acc": acc}


def continuous_term(d: Judged):
  """Q's Gaussian error in recovering the generated images' continuous codes."""
  return continuous_code_loss(d.feature("fake", "code_mean"), d.batch["continuous"]), {}


def neighbours_term(d: Judged, *, entropy_weight: float):
  """SCAN: view 0 of each real image against an augmented view of one of its mined
  neighbours, less `entropy_weight` x the entropy of view 0's mean prediction."""
  q = code_logits(d.features)
  agreement = over_heads(neighbour_consistency_loss, q[d.parts["view0"]], q[d.parts["neighbour"]])
  _, _, marginal = over_heads(mutual_information_loss, q[d.parts["view0"]])
  return agreement - entropy_weight * marginal, {"code_neighbour_agreement": agreement,
                                                 "code_neighbour_marginal_entropy": marginal}


@dataclasses.dataclass(frozen=True)
class InfoGAN:
  """InfoGAN: G's input gets codes, and D's Q head must recover them from the generated images."""
  categories: int = options.field(
      10, "Values of the categorical code (0: none); a real image's cluster is argmax Q(c | x).", ">= 0")
  continuous: int = options.field(2, "Continuous codes, uniform in [-1, 1].", ">= 0")
  categorical_weight: float = options.field(1.0, "In both players' losses.", ">= 0")
  continuous_weight: float = options.field(0.1, "In both players' losses.", ">= 0")
  heads: int = options.field(
      1, "Q heads over the categorical code, each trained from its own start; evaluation picks one.", "> 0")


@dataclasses.dataclass(frozen=True)
class Neighbours:
  """SCAN's term: Q's clusters of real images agree with their nearest neighbours'."""
  weight: float = options.field(3.0, "In D's loss.", ">= 0")
  entropy_weight: float = options.field(
      5.0, "SCAN's weight of the entropy of the batch's mean prediction, subtracted.", ">= 0")
  k: int = options.field(20, "Neighbours mined per training image, by D's embedding.", "> 0")
  refresh: int = options.field(500, "Steps between minings.", "> 0")


@dataclasses.dataclass(frozen=True)
class Refit:
  """Q heads fitted afresh on the frozen D when training ends (`refit.py`; no loss term)."""
  heads: int = options.field(
      20, "Heads, each from its own start; evaluation picks the lowest SCAN loss among all heads.", "> 0")
  steps: int = options.field(3000, "Adam steps of each head.", "> 0")
  batch_size: int = options.field(256, "Images per Adam step.", "> 0")
  learning_rate: float = options.field(3e-3, "The heads' Adam step size.", "> 0")
  k: int = options.field(20, "SCAN's neighbours per image.", "> 0")
  dim: int = options.field(
      1024, "Principal components of D's features the heads read (folded into them afterwards).", "> 0")


# Width of the hidden layer of every Q head, trained or refit.
Q_HIDDEN = 128
# The hidden activation of the refit Q heads, which `refit.py` fits with the same function.
REFIT_ACTIVATION = lambda x: nn.leaky_relu(x, 0.1)  # pylint: disable=unnecessary-lambda-assignment
_q_init = nn.initializers.normal(0.02)


def code_head(x_BxF, logits_BxK, features, *, dense, act, dtype, categories: int, continuous: int, heads: int):
  """InfoGAN's Q (Chen et al. 2016): `code_logits` (`B x categories`) and `code_mean`
  (`B x continuous`). With `heads` = H > 1, H - 1 more heads over the categorical code, each
  with its own hidden layer (`code_hidden_{i}`, `code_{i}`), all reading the same input: the
  heads of SCAN and IIC, which start apart and may settle on different clusterings, so that
  one can be chosen by its loss; `code_logits_heads` (`B x H x categories`) holds all of them."""
  del dense
  hidden = lambda name: act(nn.Dense(Q_HIDDEN, kernel_init=_q_init, dtype=dtype, name=name)(x_BxF))
  q = nn.Dense(categories + continuous, kernel_init=_q_init, dtype=dtype, name="code")(hidden("code_hidden"))
  q = q.astype(jnp.float32)
  features["code_logits"], features["code_mean"] = q[:, :categories], q[:, categories:]
  if heads > 1:
    more = [nn.Dense(categories, kernel_init=_q_init, dtype=dtype, name=f"code_{i}")(hidden(f"code_hidden_{i}"))
            for i in range(1, heads)]
    features["code_logits_heads"] = jnp.stack([features["code_logits"], *[h.astype(jnp.float32) for h in more]],
                                              axis=1)
  return logits_BxK


def refit_heads(x_BxF, logits_BxK, features, *, dense, act, dtype, heads: int):
  """`heads` = R more heads of Q's shape (`code_refit_hidden_{j}`, `code_refit_{j}`) that no
  loss trains: `refit.py` fits them on D's frozen features when training ends. Their logits
  are `code_logits_refit` (`B x R x categories`), and what they read is `code_input`."""
  del dense, act
  categories = features["code_logits"].shape[-1]
  features["code_input"] = x_BxF
  features["code_logits_refit"] = jnp.stack([
      nn.Dense(categories, dtype=dtype, name=f"code_refit_{j}")(REFIT_ACTIVATION(
          nn.Dense(Q_HIDDEN, dtype=dtype, name=f"code_refit_hidden_{j}")(x_BxF))).astype(jnp.float32)
      for j in range(heads)], axis=1)
  return logits_BxK


BLOCKS = {"infogan": InfoGAN, "infogan.neighbours": Neighbours, "infogan.refit": Refit}
HEADS = (Head(code_head, block="infogan", options=("categories", "continuous", "heads"),
              requires=("categories", "continuous")),
         Head(refit_heads, block="infogan.refit", options=("heads",)))
TERMS = (
    Term("d_code_categorical", categorical_term, inputs=("fake",), block="infogan", weight="categorical_weight",
         requires="categories"),
    Term("d_code_continuous", continuous_term, inputs=("fake",), block="infogan", weight="continuous_weight",
         requires="continuous"),
    Term("d_code_neighbours", neighbours_term, inputs=("view0", "neighbour"), block="infogan.neighbours",
         weight="weight", options=("entropy_weight",)),
    Term("g_code_categorical", categorical_term, inputs=("fake",), block="infogan", weight="categorical_weight",
         requires="categories"),
    Term("g_code_continuous", continuous_term, inputs=("fake",), block="infogan", weight="continuous_weight",
         requires="continuous"),
)


def check(config: ml_collections.ConfigDict) -> None:
  """What the fields' bounds cannot say: a code of one value, and blocks that cluster by a
  categorical code in a config without one."""
  code = config.get("infogan")
  if code is None:
    return
  if code.categories == 1:
    raise ValueError(f"config.infogan.categories={code.categories!r}: a code needs 0 or >= 2 values")
  needs_categories = [f"config.infogan.{name}" for name in ("neighbours", "consistency", "refit") if name in code]
  needs_categories += ["config.infogan.heads > 1"] if code.heads > 1 else []
  if needs_categories and not code.categories:
    raise ValueError(f"{needs_categories[0]} needs config.infogan.categories >= 2 (it clusters by that code)")
