"""What every loss term reads, how a term declares itself, and the pieces several families of
terms share.

A loss term is a pure function `term(judged, **options) -> (loss, metrics)`: `judged` holds
the discriminator's outputs on every batch the step made for the enabled terms, and each
term reads the batches it declared (`Term.inputs`). The step weights and sums the terms.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


# The batches a term may read, in the order D judges them: augmented real and generated
# images, the labelled batch, rotated images, two views of the real batch, a view of each real
# image's mined neighbour, and the weak (translated only) view.
BATCHES = ("real", "fake", "labelled", "rotated", "view0", "view1", "neighbour", "weak")


class Term(NamedTuple):
  """One loss term of one player, as its family module declares it (`TERMS`).

  name: its key in the weights and the metrics; "d_..." for D's terms, "g_..." for G's.
  loss: `loss(judged, **options) -> (loss, metrics)`.
  inputs: the batches (`BATCHES`) it reads.
  block: the path of the config block whose presence switches it on ("infogan.neighbours").
  weight: the block's field that holds its weight, or a constant weight.
  weight_scale: a constant factor of that weight (R1's gamma / 2).
  options: the block's fields passed to `loss` as keyword arguments (static in the step).
  constants: fixed keyword arguments of `loss`.
  requires: a field of the block that must be non-zero for the term to be on.
  unless: a block whose presence switches the term off (another term replaces it).
  """
  name: str
  loss: Callable[..., Any]
  inputs: tuple[str, ...]
  block: str
  weight: str | float
  weight_scale: float = 1.0
  options: tuple[str, ...] = ()
  constants: dict[str, Any] = {}
  requires: str | None = None
  unless: str | None = None

  @property
  def player(self) -> str:
    return self.name.split("_", 1)[0]


class Head(NamedTuple):
  """A head on D's `pre_logits` that a family's terms read, built where its block is present
  (`models.Discriminator`).

  build: `build(x_BxF, logits_BxK, features, *, dense, act, dtype, **options) -> logits_BxK`:
    adds its outputs to `features` (its layers are D's submodules) and returns the real/fake
    logits, changed or not; `dense(n, name)` is the backbone's kind of final layer (the same
    layer again for a name already built: "logits" is the real/fake layer), `act` its
    activation.
  block: the config block whose presence builds it.
  options: the block's fields passed to `build`.
  requires: fields of the block of which one must be non-zero for the head to be built.
  outputs: the block's field that sets the width of D's real/fake layer (the K+1 classifier's K).
  """
  build: Callable[..., Any]
  block: str
  options: tuple[str, ...] = ()
  requires: tuple[str, ...] = ()
  outputs: str | None = None


class Judged(NamedTuple):
  """D's outputs on the named batches the enabled terms asked for, judged in one pass.

  images: the `N` judged images (each batch augmented as D judges it), all batches stacked.
  logits: their `N` real/fake logits.
  features: D's features dict on all of them (`N x ...` each).
  parts: where each named batch sits in the N images ("real", "fake", "view0", ...).
  batch: what the batches were made from: "real" and "fake" (un-augmented images),
    "categories" and "continuous" (the codes the fakes were drawn with), "turns" (the
    quarter turns of "rotated"), "labels" (of "labelled"), "key" (for a term's own draws).
  step: the generator steps done before this one.
  discriminate: images -> logits of D at the params being differentiated (penalties).
  """
  images: jax.Array
  logits: jax.Array
  features: dict[str, jax.Array]
  parts: dict[str, slice]
  batch: dict[str, Any]
  step: jax.Array
  discriminate: Callable[[jax.Array], jax.Array]

  def image(self, name: str) -> jax.Array:
    """The images of batch `name`, as D judged them."""
    return self.images[self.parts[name]]

  def logit(self, name: str) -> jax.Array:
    """The real/fake logits `B` of batch `name`."""
    return self.logits[self.parts[name]]

  def feature(self, name: str, feature: str) -> jax.Array:
    """D's `feature` on batch `name`."""
    return self.features[feature][self.parts[name]]


def classification_loss(logits_BxK: jax.Array, labels_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Softmax cross-entropy against integer labels. Returns (mean loss, accuracy).

  The loss of every classifying head: SS-GAN's rotation head (labels: the quarter turns
  applied), InfoGAN's categorical code (labels: the code each fake was made from; the
  variational lower bound of the mutual information, less the constant H(c)) and the K+1
  discriminator's supervised term (labels: the labelled subset's classes).
  """
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, labels_B).mean()
  return loss, (logits_BxK.argmax(-1) == labels_B).mean()


def over_heads(loss_fn, *logits):
  """`loss_fn` of `B x K` logits on each head of `B x H x K` logits (axis 1), its outputs
  (an array or a tuple of them) averaged over the heads; `B x K` logits go straight to it.
  The heads of a multi-head clustering (SCAN, IIC) each take the loss, and it is their mean."""
  if logits[0].ndim == 2:
    return loss_fn(*logits)
  return jax.tree.map(lambda v: v.mean(0), jax.vmap(loss_fn, in_axes=1)(*logits))


def code_logits(features: dict[str, jax.Array]) -> jax.Array:
  """Q's categorical logits: `B x H x K` with several heads (`infogan.heads`), else `B x K`."""
  return features.get("code_logits_heads", features["code_logits"])


def mutual_information_loss(logits_BxK: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Minus the mutual information between images and the clusters a classifier gives
  them, estimated on a batch (Krause et al. 2010, "regularized information maximization"):
  mean_x H(p(c | x)) - H(mean_x p(c | x)). Low when each image's prediction is confident
  and the batch uses every cluster equally. Returns (loss, conditional H, marginal H), in nats."""
  log_p = jax.nn.log_softmax(logits_BxK)
  conditional = -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
  log_marginal = jax.nn.logsumexp(log_p, axis=0) - jnp.log(logits_BxK.shape[0])
  marginal = -jnp.sum(jnp.exp(log_marginal) * log_marginal)
  return conditional - marginal, conditional, marginal
