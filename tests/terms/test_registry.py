"""Which terms a config switches on, their weights, the batches they read, and the blocks'
fields against configs/base.py."""

import inspect
import os
import re
import sys

import ml_collections
import pytest

from configs import base
from conftest import REPO, tiny_config
from gan_jax import options
from gan_jax import loop
from gan_jax import state as state_lib
from gan_jax import terms
from gan_jax.evaluation import generation
from gan_jax.evaluation import representation


@pytest.mark.parametrize("spec,d_terms,g_terms", [
    ("mnist_dcgan", ["d_adversarial", "d_contrastive"], ["g_adversarial"]),
    ("mnist_dcgan:rotation", ["d_adversarial", "d_contrastive", "d_rotation"], ["g_adversarial", "g_rotation"]),
    ("mnist_infogan", ["d_adversarial", "d_code_consistency", "d_contrastive", "d_code_categorical",
                       "d_code_continuous", "d_code_neighbours"],
     ["g_adversarial", "g_code_categorical", "g_code_continuous"]),
    ("mnist_ssl", ["d_adversarial", "d_class_consistency", "d_contrastive", "d_supervised", "d_class_entropy"],
     ["g_feature_matching"]),
    ("mnist_ssl:supervised_only", ["d_adversarial", "d_supervised"], ["g_feature_matching"]),
    ("cifar10_dcgan", ["d_adversarial"], ["g_adversarial"]),
])
def test_a_config_switches_on_the_terms_whose_blocks_it_has(spec, d_terms, g_terms):
  enabled = terms.enabled(tiny_config(spec))
  assert [name for name, _, _ in enabled.discriminator] == d_terms
  assert [name for name, _, _ in enabled.generator] == g_terms


def test_the_objective_is_the_weighted_sum_of_the_enabled_terms():
  assert terms.objective(tiny_config()) == ["D minimises 1.0 d_adversarial(real, fake) + 1.0 d_contrastive(view0, view1)",
                                            "G minimises 1.0 g_adversarial(fake)"]
  assert terms.objective(tiny_config("mnist_ssl:supervised_only")) == [
      "D minimises 0.0 d_adversarial(real, fake) + 1.0 d_supervised(labelled)",
      "G minimises 1.0 g_feature_matching(real, fake)"]
  assert terms.objective(tiny_config("mnist_contrad")) == [
      "D minimises 1.0 d_adversarial(real, fake; detach) + 1.0 d_contrastive(view0, view1)"
      " + 1.0 d_fake_negatives(view0, view1, fake)", "G minimises 1.0 g_adversarial(fake)"]


def test_weights_come_from_the_blocks():
  config = tiny_config("mnist_infogan")
  config.r1 = base.block("r1", gamma=4.0)
  assert terms.weights(config) == {
      "d_adversarial": 1.0, "g_adversarial": 1.0, "d_code_consistency": 1.0, "d_contrastive": 1.0,
      "d_code_categorical": 1.0, "d_code_continuous": 0.1, "d_code_neighbours": 3.0, "g_code_categorical": 1.0,
      "g_code_continuous": 0.1, "d_r1": 2.0}  # R1's weight is gamma / 2.
  # The supervised-only control keeps the adversarial term, at weight 0.
  assert terms.weights(tiny_config("mnist_ssl:supervised_only"))["d_adversarial"] == 0.0


def test_the_batches_are_the_union_of_the_inputs_in_a_fixed_order():
  enabled = terms.enabled(tiny_config("mnist_infogan"))
  assert terms.inputs(enabled.discriminator) == ("real", "fake", "view0", "view1", "neighbour", "weak")
  assert terms.inputs(enabled.generator) == ("fake",)
  assert terms.inputs(terms.enabled(tiny_config("mnist_ssl")).generator, ("fake", "rotated", "real")) == \
      ("fake", "real")


def _with_block(path: str):
  """The default tiny config with block `path` and the blocks around it at their defaults."""
  config = tiny_config()
  parts = path.split(".")
  for i in range(1, len(parts) + 1):
    inner = ".".join(parts[:i])
    if terms.block(config, inner) is None:
      node = terms.block(config, ".".join(parts[:i - 1])) if i > 1 else config
      node[parts[i - 1]] = base.block(inner)
  return config


def _refused(allowed, default):
  """A value of `default`'s type that `allowed` refuses: just past a bound, outside a range,
  or not a choice."""
  if isinstance(allowed, tuple):
    return "not_" + allowed[0]
  if allowed.startswith("["):
    return type(default)(float(allowed[1:-1].split(", ")[1]) + 0.5)
  op, x = allowed.split(" ")
  return type(default)(float(x) - (1 if op == ">=" else 0))


# Every declared field with a bound, in every block where it goes, at a value the bound refuses;
# not the booleans, whose ConfigDict refuses any other type itself (a TypeError naming the field).
DECLARED_BOUNDS = [(path, f.name, f.metadata["allowed"], f.default) for path, declaration in terms.BLOCKS.items()
                   for f in options.fields(declaration)
                   if f.metadata["allowed"] is not None and not isinstance(f.default, bool)]


@pytest.mark.parametrize("path,name,allowed,default", DECLARED_BOUNDS,
                         ids=[f"{p}.{n}" for p, n, _, _ in DECLARED_BOUNDS])
def test_a_value_out_of_a_declared_bound_is_named(path, name, allowed, default):
  config = _with_block(path)
  loop.validate_config(config)  # At its defaults the block is valid.
  terms.block(config, path)[name] = value = _refused(allowed, default)
  with pytest.raises(ValueError, match=re.escape(f"config.{path}.{name}={value!r}{options.describe(allowed)}")):
    loop.validate_config(config)


@pytest.mark.parametrize("spec,path,value,message", [
    ("mnist_infogan", "infogan.categories", 1, r"config.infogan.categories=1: a code needs 0 or >= 2 values"),
    ("mnist_infogan", "infogan.continuous_weight", -0.1, r"config.infogan.continuous_weight=-0.1 must be >= 0"),
    ("mnist_infogan", "infogan.neighbours.refresh", 0, r"config.infogan.neighbours.refresh=0 must be positive"),
    ("mnist_ssl", "kplus1.consistency.threshold", 1.5, r"config.kplus1.consistency.threshold=1.5 must be in \[0, 1\]"),
    ("mnist_ssl", "kplus1.num_classes", 1, r"config.kplus1.num_classes=1 must be >= 2"),
    ("mnist_dcgan", "adversarial.loss", "hinj", r"config.adversarial.loss='hinj'; allowed: non_saturating, hinge, "
                                                r"wasserstein$"),
    ("mnist_ssl", "adversarial.detach", True, r"config.adversarial.detach=True: the K\+1 classifier's real/fake logit "
                                              r"is its class logits; allowed with kplus1: False$"),
    ("mnist_contrad", "batch_size", 1, r"config.batch_size=1: the fake-negatives term needs two generated images a "
                                       r"batch; allowed: >= 2$"),
])
def test_bad_block_values_are_named_in_one_line(spec, path, value, message):
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
    config.infogan[block] = base.block(f"infogan.{block}")
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
  config = base.get_config()
  assert set(config) == set(state_lib.FIELDS) | {"adversarial"}
  assert set(config.evals.representation) == set(representation.FIELDS)
  assert set(config.evals.generation) == set(generation.FIELDS)
  with pytest.raises(ValueError, match=r"KPlus1 has no field 'labels'; allowed: labels_per_class, num_classes"):
    base.block("kplus1", labels=10)
  with pytest.raises(ValueError, match=r"'kplus2' is not a term block; allowed: adversarial, "):
    base.block("kplus2")


@pytest.mark.parametrize("term", terms.TERMS, ids=[t.name for t in terms.TERMS])
def test_each_declared_term_names_what_exists(term):
  """Its block is declared, and its weight, options and condition are fields of that block;
  it reads batches the step makes, and its loss takes the options it is given."""
  assert term.player in ("d", "g") and [t.name for t in terms.TERMS].count(term.name) == 1
  fields = {f.name for f in options.fields(terms.BLOCKS[term.block])}
  assert {term.weight} <= fields if isinstance(term.weight, str) else term.weight == 1.0
  assert set(term.options) | {term.requires} - {None} <= fields
  assert term.unless is None or term.unless in terms.BLOCKS
  assert set(term.inputs) <= set(terms.BATCHES)
  inspect.signature(term.loss).bind(None, **term.constants, **{name: None for name in term.options})


def test_docs_configs_shows_the_declared_blocks_as_generated():
  """docs/configs.md's term and evaluator sections are what `tools/write_config_docs.py` writes now."""
  sys.path.insert(0, os.path.join(REPO, "tools"))
  import write_config_docs  # pylint: disable=g-import-not-at-top
  with open(write_config_docs.PAGE) as f:
    page = f.read()
  for name, text in write_config_docs.generated().items():
    assert write_config_docs.section(page, name) == text, (
        f"docs/configs.md's {name} section is out of date: run python tools/write_config_docs.py")


def test_a_config_saved_before_a_field_was_declared_reads_its_default(tmp_path):
  import json
  from gan_jax import runs
  saved = tiny_config().to_dict()
  del saved["adversarial"]["detach"], saved["contrastive"]["temperature"]
  (tmp_path / runs.CONFIG_FILE).write_text(json.dumps(saved))
  config = runs.load_config(str(tmp_path))
  assert config.adversarial.detach is False and config.contrastive.temperature == 0.2
  terms.check_config(config)
  # A config written by hand is not completed: the field it lacks is named.
  with pytest.raises(ValueError, match="config.adversarial lacks its field 'detach'"):
    terms.check_config(ml_collections.ConfigDict(saved))
