"""Which terms a config switches on, their weights, the batches they read, and the blocks'
fields against configs/base.py."""

import inspect

import pytest

from configs import base
from conftest import tiny_config
from gan_jax import loop
from gan_jax import state as state_lib
from gan_jax import terms
from gan_jax.evaluation import generation
from gan_jax.evaluation import representation


@pytest.mark.parametrize("spec,d_terms,g_terms", [
    ("mnist_dcgan", ["d_adversarial", "d_contrastive"], ["g_adversarial"]),
    ("mnist_dcgan:rotation", ["d_adversarial", "d_rotation", "d_contrastive"], ["g_adversarial", "g_rotation"]),
    ("mnist_infogan", ["d_adversarial", "d_code_categorical", "d_code_continuous", "d_code_neighbours",
                       "d_code_consistency", "d_contrastive"],
     ["g_adversarial", "g_code_categorical", "g_code_continuous"]),
    ("mnist_ssl", ["d_adversarial", "d_class_consistency", "d_supervised", "d_class_entropy", "d_contrastive"],
     ["g_feature_matching"]),
    ("mnist_ssl:supervised_only", ["d_adversarial", "d_supervised"], ["g_feature_matching"]),
    ("cifar10_dcgan", ["d_adversarial"], ["g_adversarial"]),
])
def test_a_config_switches_on_the_terms_whose_blocks_it_has(spec, d_terms, g_terms):
  enabled = terms.enabled(tiny_config(spec))
  assert [name for name, _, _ in enabled.discriminator] == d_terms
  assert [name for name, _, _ in enabled.generator] == g_terms


def test_weights_come_from_the_blocks():
  config = tiny_config("mnist_infogan")
  config.r1 = base.r1(gamma=4.0)
  weights = terms.weights(config)
  assert weights["d_adversarial"] == 1.0 and weights["d_code_neighbours"] == 3.0
  assert weights["d_code_continuous"] == weights["g_code_continuous"] == 0.1
  assert weights["d_r1"] == 2.0  # gamma / 2.
  # The supervised-only control keeps the adversarial term, at the K+1 block's weight 0.
  assert terms.weights(tiny_config("mnist_ssl:supervised_only"))["d_adversarial"] == 0.0


def test_the_batches_are_the_union_of_the_inputs_in_a_fixed_order():
  enabled = terms.enabled(tiny_config("mnist_infogan"))
  assert terms.inputs(enabled.discriminator) == ("real", "fake", "view0", "view1", "neighbour", "weak")
  assert terms.inputs(enabled.generator) == ("fake",)
  assert terms.inputs(terms.enabled(tiny_config("mnist_ssl")).generator, ("fake", "rotated", "real")) == \
      ("fake", "real")


@pytest.mark.parametrize("spec,path,value,message", [
    ("mnist_infogan", "infogan.categories", 1, r"config.infogan.categories=1: a code needs 0 or >= 2 values"),
    ("mnist_infogan", "infogan.continuous_weight", -0.1, r"config.infogan.continuous_weight=-0.1 must be >= 0"),
    ("mnist_infogan", "infogan.heads", 0, r"config.infogan.heads=0 must be positive"),
    ("mnist_infogan", "infogan.neighbours.entropy_weight", -1.0,
     r"config.infogan.neighbours.entropy_weight=-1.0 must be >= 0"),
    ("mnist_infogan", "infogan.neighbours.refresh", 0, r"config.infogan.neighbours.refresh=0 must be positive"),
    ("mnist_infogan", "infogan.consistency.threshold", -0.1,
     r"config.infogan.consistency.threshold=-0.1 must be in \[0, 1\]"),
    ("mnist_infogan", "infogan.consistency.start", -1, r"config.infogan.consistency.start=-1 must be >= 0"),
    ("mnist_ssl", "kplus1.labels_per_class", 0, r"config.kplus1.labels_per_class=0 must be positive"),
    ("mnist_ssl", "kplus1.num_classes", 1, r"config.kplus1.num_classes=1 must be >= 2"),
    ("mnist_ssl", "kplus1.entropy.weight", -1.0, r"config.kplus1.entropy.weight=-1.0 must be >= 0"),
    ("mnist_ssl", "kplus1.consistency.threshold", 1.5, r"config.kplus1.consistency.threshold=1.5 must be in \[0, 1\]"),
    ("mnist_dcgan", "contrastive.temperature", 0.0, r"config.contrastive.temperature=0.0 must be positive"),
    ("mnist_dcgan:rotation", "rotation.d_weight", -1.0, r"config.rotation.d_weight=-1.0 must be >= 0"),
])
def test_bad_block_values_are_named(spec, path, value, message):
  with pytest.raises(ValueError, match=message):
    loop.validate_config(tiny_config(spec, **{path: value}))


def test_unknown_missing_and_misplaced_fields_are_named():
  config = tiny_config("mnist_infogan")
  config.infogan.categoris = 10
  with pytest.raises(ValueError, match=r"config.infogan.categoris is not a field; allowed: categories, continuous, "
                                       r"categorical_weight, continuous_weight, heads, consistency, neighbours, refit"):
    loop.validate_config(config)
  config = tiny_config("mnist_infogan")
  del config.infogan.neighbours.k
  with pytest.raises(ValueError, match=r"config.infogan.neighbours lacks its field 'k'"):
    loop.validate_config(config)
  config = tiny_config()
  config.gradient_penalty = 10.0  # A weight where a block belongs (as configs before blocks had it).
  with pytest.raises(ValueError, match=r"config.gradient_penalty=10.0 must be a block with fields weight"):
    loop.validate_config(config)
  config = tiny_config()
  config.lean_views = False  # A retired knob, as an older run's config.json holds it.
  with pytest.raises(ValueError, match=r"config.lean_views is not a field; allowed: seed, data"):
    loop.validate_config(config)


@pytest.mark.parametrize("block", ["neighbours", "consistency", "refit"])
def test_infogan_blocks_and_several_heads_need_a_categorical_code(block):
  config = tiny_config("mnist_infogan", **{"infogan.categories": 0})
  if block not in config.infogan:
    config.infogan[block] = getattr(base, block)()
  for name in {"neighbours", "consistency", "refit"} - {block}:
    if name in config.infogan:
      del config.infogan[name]
  with pytest.raises(ValueError, match=rf"config.infogan.{block} needs config.infogan.categories >= 2"):
    loop.validate_config(config)
  config = tiny_config("mnist_infogan", **{"infogan.categories": 0, "infogan.heads": 2})
  del config.infogan.neighbours, config.infogan.consistency
  with pytest.raises(ValueError, match=r"config.infogan.heads > 1 needs config.infogan.categories >= 2"):
    loop.validate_config(config)


def test_configs_base_declares_the_fields_the_code_reads():
  """Every block function of configs/base.py makes the fields the code checks and reads, and no more."""
  config = base.get_config()
  assert set(config) == set(state_lib.FIELDS)
  assert set(config.evals.representation) == set(representation.FIELDS)
  assert set(config.evals.generation) == set(generation.FIELDS)
  made = {"contrastive": base.contrastive(), "rotation": base.rotation(), "gradient_penalty": base.gradient_penalty(),
          "r1": base.r1(), "infogan": base.infogan(), "infogan.neighbours": base.neighbours(),
          "infogan.consistency": base.consistency(), "infogan.refit": base.refit(), "kplus1": base.kplus1(),
          "kplus1.entropy": base.entropy(), "kplus1.consistency": base.consistency()}
  assert set(made) == set(terms.BLOCK_FIELDS)
  for path, block in made.items():
    assert set(block) == set(terms.BLOCK_FIELDS[path]), path
  blocks = {name for name, f in inspect.getmembers(base, inspect.isfunction) if name not in ("get_config", "optimizer")}
  assert blocks == {path.split(".")[-1] for path in made}
