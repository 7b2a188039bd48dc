"""The loss terms D and G minimise, and which of them a config switches on.

Each term is a small pure function of D's outputs on the batches it declares
(`core.Judged`) returning `(loss, metrics)`. A term is on where its config block is present
(`config.rotation`, `config.infogan.neighbours`, ...; the adversarial term always), its weight
and options in that block (defaults and comments: configs/base.py). The step builds the union
of the batches the enabled terms read, judges them in one pass of D, and sums the terms times
their weights, which enter the compiled step as values: runs that differ only in weights share
one program. Adding a regulariser: a function in a family module, its `Term` below, its
block in configs/base.py, and a test on a hand-computed case.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import ml_collections

from gan_jax.terms import adversarial
from gan_jax.terms import consistency
from gan_jax.terms import contrastive
from gan_jax.terms import infogan
from gan_jax.terms import kplus1
from gan_jax.terms import penalties
from gan_jax.terms import rotation

# The batches a term may read, in the order D judges them: augmented real and generated
# images, the labelled batch, rotated images, two views of the real batch, a view of each real
# image's mined neighbour, and the weak (translated only) view.
BATCHES = ("real", "fake", "labelled", "rotated", "view0", "view1", "neighbour", "weak")


class Term(NamedTuple):
  """One loss term of one player.

  name: its key in the weights and the metrics ("d_contrastive").
  loss: `loss(judged, **options) -> (loss, metrics)`.
  inputs: the batches (`BATCHES`) it reads.
  block: the config block whose presence switches it on (None: always on).
  weight: its weight, from the config.
  options: static keyword arguments of `loss`, from the config.
  on: a further condition on the config.
  """
  name: str
  loss: Callable[..., Any]
  inputs: tuple[str, ...]
  block: str | None
  weight: Callable[[ml_collections.ConfigDict], float]
  options: Callable[[ml_collections.ConfigDict], dict[str, Any]] = lambda c: {}
  on: Callable[[ml_collections.ConfigDict], bool] = lambda c: True


def block(config: ml_collections.ConfigDict, path: str):
  """`config.<path>` (dotted), or None where a block on the way is absent."""
  node = config
  for name in path.split("."):
    node = node.get(name) if node is not None else None
  return node


def _adversarial_weight(config) -> float:
  kp1 = config.get("kplus1")  # The K+1 GAN weighs its real/fake ("unsupervised") loss.
  return kp1.unsupervised_weight if kp1 is not None else 1.0


def _consistency(head: str):
  return lambda config: dict(head=head, threshold=block(config, BLOCK_OF[head]).threshold,
                             start=block(config, BLOCK_OF[head]).start)


BLOCK_OF = {"code": "infogan.consistency", "class": "kplus1.consistency"}

# D's terms, in the order they are summed.
DISCRIMINATOR = (
    Term("d_adversarial", adversarial.discriminator_term, ("real", "fake"), None, _adversarial_weight,
         lambda c: dict(loss=c.loss)),
    Term("d_code_categorical", infogan.categorical_term, ("fake",), "infogan", lambda c: c.infogan.categorical_weight,
         on=lambda c: c.infogan.categories > 0),
    Term("d_code_continuous", infogan.continuous_term, ("fake",), "infogan", lambda c: c.infogan.continuous_weight,
         on=lambda c: c.infogan.continuous > 0),
    Term("d_code_neighbours", infogan.neighbours_term, ("view0", "neighbour"), "infogan.neighbours",
         lambda c: c.infogan.neighbours.weight, lambda c: dict(entropy_weight=c.infogan.neighbours.entropy_weight)),
    Term("d_code_consistency", consistency.consistency_term, ("weak", "view0"), "infogan.consistency",
         lambda c: c.infogan.consistency.weight, _consistency("code")),
    Term("d_class_consistency", consistency.consistency_term, ("weak", "view0"), "kplus1.consistency",
         lambda c: c.kplus1.consistency.weight, _consistency("class")),
    Term("d_supervised", kplus1.supervised_term, ("labelled",), "kplus1", lambda c: c.kplus1.supervised_weight),
    Term("d_class_entropy", kplus1.entropy_term, ("real",), "kplus1.entropy", lambda c: c.kplus1.entropy.weight),
    Term("d_rotation", rotation.rotation_term, ("rotated",), "rotation", lambda c: c.rotation.d_weight),
    Term("d_contrastive", contrastive.contrastive_term, ("view0", "view1"), "contrastive",
         lambda c: c.contrastive.weight, lambda c: dict(temperature=c.contrastive.temperature)),
    Term("d_gradient_penalty", penalties.gradient_penalty_term, (), "gradient_penalty",
         lambda c: c.gradient_penalty.weight),
    Term("d_r1", penalties.r1_term, ("real",), "r1", lambda c: 0.5 * c.r1.gamma),
)

# G's terms, in the order they are summed. The K+1 GAN's G matches features instead of fooling D.
GENERATOR = (
    Term("g_adversarial", adversarial.generator_term, ("fake",), None, lambda c: 1.0, lambda c: dict(loss=c.loss),
         on=lambda c: "kplus1" not in c),
    Term("g_feature_matching", kplus1.feature_matching_term, ("real", "fake"), "kplus1", lambda c: 1.0),
    Term("g_code_categorical", infogan.categorical_term, ("fake",), "infogan", lambda c: c.infogan.categorical_weight,
         on=lambda c: c.infogan.categories > 0),
    Term("g_code_continuous", infogan.continuous_term, ("fake",), "infogan", lambda c: c.infogan.continuous_weight,
         on=lambda c: c.infogan.continuous > 0),
    Term("g_rotation", rotation.rotation_term, ("rotated",), "rotation", lambda c: c.rotation.g_weight),
)


class Enabled(NamedTuple):
  """The terms a config switches on, each with its loss function bound to its options."""
  discriminator: tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...]
  generator: tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...]

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(name for name, _, _ in self.discriminator + self.generator)


def _on(term: Term, config) -> bool:
  return (term.block is None or block(config, term.block) is not None) and term.on(config)


def enabled(config: ml_collections.ConfigDict) -> Enabled:
  """(name, loss(judged) -> (loss, metrics), inputs) of each term `config` switches on."""
  bind = lambda terms: tuple((t.name, functools.partial(t.loss, **t.options(config)), t.inputs)
                             for t in terms if _on(t, config))
  return Enabled(bind(DISCRIMINATOR), bind(GENERATOR))


def weights(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{term name: weight} of the terms `config` switches on."""
  return {t.name: float(t.weight(config)) for t in DISCRIMINATOR + GENERATOR if _on(t, config)}


def inputs(terms, order: tuple[str, ...] = BATCHES) -> tuple[str, ...]:
  """The batches the `(name, loss, inputs)` terms read, in `order`."""
  needed = {name for _, _, names in terms for name in names}
  return tuple(name for name in order if name in needed)


# The fields of each term block (defaults and comments: configs/base.py); the blocks nested in
# a block (`infogan.neighbours`) are optional there.
BLOCK_FIELDS = {
    "contrastive": ("weight", "temperature", "projection_dim"),
    "rotation": ("d_weight", "g_weight"),
    "gradient_penalty": ("weight",),
    "r1": ("gamma",),
    "infogan": ("categories", "continuous", "categorical_weight", "continuous_weight", "heads"),
    "infogan.neighbours": ("weight", "entropy_weight", "k", "refresh"),
    "infogan.consistency": ("weight", "threshold", "start"),
    "infogan.refit": ("heads", "steps", "batch_size", "learning_rate", "k", "dim"),
    "kplus1": ("labels_per_class", "num_classes", "supervised_weight", "unsupervised_weight"),
    "kplus1.entropy": ("weight",),
    "kplus1.consistency": ("weight", "threshold", "start"),
}
# Fields that must be >= 0, > 0, or in [0, 1], wherever their block is present.
_NON_NEGATIVE = ("weight", "d_weight", "g_weight", "gamma", "categorical_weight", "continuous_weight", "continuous",
                 "entropy_weight", "supervised_weight", "unsupervised_weight", "start")
_POSITIVE = ("temperature", "projection_dim", "heads", "k", "refresh", "steps", "batch_size", "learning_rate", "dim",
             "labels_per_class")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field of a term block that is unknown, missing or
  holds a value training cannot use."""
  for path, fields in BLOCK_FIELDS.items():
    node = block(config, path)
    if node is None:
      continue
    nested = {p[len(path) + 1:] for p in BLOCK_FIELDS if p.startswith(path + ".") and "." not in p[len(path) + 1:]}
    if not hasattr(node, "keys"):
      raise ValueError(f"config.{path}={node!r} must be a block with fields {', '.join(fields)} (configs/base.py)")
    for name in node.keys():
      if name not in fields and name not in nested:
        raise ValueError(f"config.{path}.{name} is not a field; allowed: {', '.join(fields + tuple(sorted(nested)))}")
    for name in fields:
      if name not in node:
        raise ValueError(f"config.{path} lacks its field {name!r} (configs/base.py declares it)")
      value = node[name]
      if (name in _NON_NEGATIVE and not value >= 0) or (name in _POSITIVE and not value > 0) or (
          name == "threshold" and not 0 <= value <= 1):
        allowed = ">= 0" if name in _NON_NEGATIVE else "positive" if name in _POSITIVE else "in [0, 1]"
        raise ValueError(f"config.{path}.{name}={value!r} must be {allowed}")
  code, kp1 = config.get("infogan"), config.get("kplus1")
  if code is not None:
    if code.categories == 1 or code.categories < 0:
      raise ValueError(f"config.infogan.categories={code.categories!r}: a code needs 0 or >= 2 values")
    needs_categories = [f"config.infogan.{name}" for name in ("neighbours", "consistency", "refit") if name in code]
    needs_categories += ["config.infogan.heads > 1"] if code.heads > 1 else []
    if needs_categories and not code.categories:
      raise ValueError(f"{needs_categories[0]} needs config.infogan.categories >= 2 (it clusters by that code)")
  if kp1 is not None and kp1.num_classes < 2:
    raise ValueError(f"config.kplus1.num_classes={kp1.num_classes!r} must be >= 2")
  adversarial.get_loss(config.loss)
