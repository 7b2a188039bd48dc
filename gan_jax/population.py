"""Populations: the members of one recipe (seeds x ablations) trained as one compiled program.

`config.population.seeds` = N gives seeds `seed` ... `seed + N - 1`; `config.population.ablations`
names terms to switch off ("adversarial,contrastive"; "a+b" switches off two at once). Every
seed gets the full recipe and one member per ablation. An ablated term keeps its block, and so
its heads, but enters the step with weight 0: members differ only in values, so one program,
`jax.vmap` over a leading member axis of the train state, updates them all. Each member draws
the data order and randomness of a single run with its seed. A single run is a population of
one: its state, weights and metrics carry the member axis too, so one program serves both;
only its files (at the workdir's root) and its name (none) say it is alone (`alone`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax import parallel
from gan_jax import state as state_lib
from gan_jax import terms

MEMBER_AXIS = "member"


class Member(NamedTuple):
  """One member: its seed and the terms it trains without (() for the full recipe)."""
  seed: int
  ablation: tuple[str, ...] = ()

  @property
  def kind(self) -> str:
    """What the member trains: "full", or "no_<term>[+<term>]"."""
    return "full" if not self.ablation else "no_" + "+".join(self.ablation)

  @property
  def name(self) -> str:
    return f"seed{self.seed}" + ("" if not self.ablation else f"-{self.kind}")


def ablatable(config: ml_collections.ConfigDict) -> dict[str, tuple[str, ...]]:
  """{term name an ablation may name: the weights it sets to 0} of the terms `config`
  switches on, named without their player ("rotation" is d_rotation and g_rotation)."""
  named = {}
  for name in terms.weights(config):
    named.setdefault(name.split("_", 1)[1], []).append(name)
  return {name: tuple(weights) for name, weights in named.items()}


def _ablations(config) -> list[tuple[str, ...]]:
  spec = config.population.ablations
  return [tuple(t.strip() for t in group.split("+")) for group in spec.split(",") if group.strip()]


def members(config: ml_collections.ConfigDict) -> tuple[Member, ...]:
  """The population's members, seed by seed, the full recipe first."""
  seeds = range(config.seed, config.seed + config.population.seeds)
  return tuple(Member(seed, ablation) for seed in seeds for ablation in [()] + _ablations(config))


def alone(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` trains one member, the run itself: its files stay at the workdir's root
  and its logs and results name no member. The program is the same either way."""
  return len(members(config)) == 1


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming a population setting training cannot use."""
  seeds = config.population.seeds
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise ValueError(f"config.population.seeds={seeds!r} must be a positive integer")
  known = ablatable(config)
  d_terms = {name for name in terms.weights(config) if name.startswith("d_")}
  for ablation in _ablations(config):
    for term in ablation:
      if term not in known:
        raise ValueError(f"config.population.ablations={config.population.ablations!r}: {term!r} is not a term this "
                         f"config switches on; allowed: {', '.join(known)} (comma-separated; '+' joins terms)")
    if d_terms <= {weight for term in ablation for weight in known[term]}:
      raise ValueError(f"config.population.ablations={config.population.ablations!r}: without {'+'.join(ablation)} "
                       "D learns from no term; keep one of " + ", ".join(sorted(n[2:] for n in d_terms)))


def member_weights(config: ml_collections.ConfigDict, member: Member) -> dict[str, float]:
  """{term name: weight} of one member: the config's, its ablated terms' at 0."""
  off = {weight for term in member.ablation for weight in ablatable(config)[term]}
  return {name: 0.0 if name in off else w for name, w in terms.weights(config).items()}


def weights(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """The train function's `weights` argument: {term name: `P` float32 weights, one per member}."""
  per_member = [member_weights(config, m) for m in members(config)]
  return {name: np.asarray([w[name] for w in per_member], np.float32) for name in per_member[0]}


def member_config(config: ml_collections.ConfigDict, member: Member) -> ml_collections.ConfigDict:
  """The config of a single run with the member's seed (its ablation is in its weights)."""
  single = ml_collections.ConfigDict(config.to_dict())
  single.seed = member.seed
  single.population.update(seeds=1, ablations="")
  return single


def stack(trees: list[Any]) -> Any:
  """Pytrees of one structure stacked along a new leading (member) axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def map_members(fn, *trees, unroll: bool | None = None):
  """`jax.vmap(fn)` over the leading member axis of `trees`, the members split over the mesh's
  member axis; on CPU unrolled, member by member, unless `unroll` says otherwise.

  Unrolled, each member's operations are those of a single run, so a member computes what
  the single run with its seed computes, bit for bit; vmapped convolutions are grouped ones,
  whose sums round differently, and Adam's first steps turn such differences in gradients
  near 0 into differences of a learning rate. Accelerators keep vmap: there one program of
  batched operations is the point. (`step.repeat` unrolls loops on CPU for another reason.)
  """
  if unroll is None:
    unroll = jax.default_backend() == "cpu"
  if not unroll:
    return jax.vmap(fn, spmd_axis_name=parallel.MEMBER_AXIS)(*trees)
  size = jax.tree.leaves(trees)[0].shape[0]
  return stack([fn(*unstack(trees, i)) for i in range(size)])


def unstack(tree: Any, index: int) -> Any:
  """Member `index` of a pytree with a leading member axis."""
  return jax.tree.map(lambda x: x[index], tree)


def init_state(gan, config: ml_collections.ConfigDict, num_examples: int = 0) -> dict[str, Any]:
  """The population's fresh train state: each member's `state.init_state` (that of a single
  run with its seed), stacked along the member axis. Pure."""
  return stack([state_lib.init_state(gan, member_config(config, m), num_examples) for m in members(config)])
