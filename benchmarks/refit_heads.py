r"""How the clusters of Q's refit heads (`infogan.refit`) depend on how they are fitted.

  python benchmarks/refit_heads.py --workdir=runs/infogan_refit30_seed0 \
      --variants=10:3000:1024:1e-3,10:3000:1024:3e-3,20:3000:1024:3e-3

Each variant, heads:steps:dim:learning_rate, is the run's `config.infogan.refit` block (its
defaults, `configs/base.py`, where the run has none) with those fields and `--batch_size`; it
fits that many heads afresh (`refit.fit_heads`) on the frozen features of the run's latest
checkpoint, as `refit.make_refit_fn` does at the end of training: D's EMA where the run keeps
one (the weights eval.py reads the heads from), the training split, neighbours by D's
embedding. The heads are written into Q's refit layers and chosen among, with the heads trained with D, as
eval.py chooses (`representation.choose_code_head`: lowest SCAN loss, no labels). Printed per
variant: the chosen head's test ACC, the best and the mean refit head's, and the fitting time.
The run's checkpoint is not changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import base  # noqa: E402
import gan_jax  # noqa: E402
from gan_jax import neighbours as neighbours_lib, refit, terms  # noqa: E402
from gan_jax.evaluation import metrics, representation  # noqa: E402
from gan_jax.models import heads  # noqa: E402


def parse_variant(text: str) -> dict:
  fields = text.split(":")
  if len(fields) != 4:
    raise ValueError(f"--variants: {text!r} is not heads:steps:dim:learning_rate (e.g. 10:3000:1024:3e-3)")
  return {"heads": int(fields[0]), "steps": int(fields[1]), "dim": int(fields[2]), "learning_rate": float(fields[3])}


def refit_block(config, variant: dict, batch_size: int):
  """`config.infogan.refit` (its defaults where the run has none) with the variant's fields and `batch_size`."""
  given = terms.block(config, "infogan.refit")
  return base.refit(**{**(given.to_dict() if given is not None else {}), **variant, "batch_size": batch_size})


def sweep(workdir: str, variants: list[dict], batch_size: int = 256, seed: int = 0) -> list[dict]:
  """For each variant: {variant, chosen head, its test ACC, every refit head's test ACC, seconds}."""
  run = gan_jax.load_run(workdir)
  if not run.gan.num_categories:
    raise ValueError(f"{workdir}: not an InfoGAN run (config.infogan.categories is 0)")
  train, test = (gan_jax.load_dataset(run.config.data.name, split, image_size=run.config.image_size,
                                      channels=run.config.channels, resize=run.config.data.resize)
                for split in ("train", "test"))
  variables = {**run.discriminator, "params": run.state.get("d_ema_params", run.discriminator["params"])}
  inputs, embeddings = jax.jit(lambda v, x: neighbours_lib.map_discriminator(run.gan, v, x, refit.refit_inputs))(
      variables, train.images)
  neighbours = neighbours_lib.nearest_neighbours(embeddings, refit_block(run.config, {}, batch_size).k)
  mining = terms.block(run.config, "infogan.neighbours")
  entropy_weight = mining.entropy_weight if mining is not None else refit.SCAN_ENTROPY_WEIGHT
  trained = {name: value for name, value in variables["params"].items() if not name.startswith("code_refit")}
  results = []
  for variant in variants:
    settings = refit_block(run.config, variant, batch_size)
    fit = jax.jit(lambda key, x, n, r=settings: refit.fit_heads(
        key, x, n, num_heads=r.heads, hidden=run.gan.discriminator.code_hidden,
        categories=run.config.infogan.categories, steps=r.steps, batch_size=r.batch_size,
        learning_rate=r.learning_rate, entropy_weight=entropy_weight, dim=r.dim, act=heads.REFIT_ACTIVATION))
    start = time.perf_counter()
    dense, _ = jax.block_until_ready(fit(jax.random.key(seed), inputs, neighbours))
    seconds = time.perf_counter() - start
    params = {**trained, **refit.refit_head_params(dense, settings.heads)}
    discriminator = run.gan.discriminator.clone(code_refit_heads=settings.heads)
    refitted = {**variables, "params": params}
    head, _ = representation.choose_code_head(discriminator, refitted, train.images, refit=True)
    clusters = representation.code_head_logits(discriminator, refitted, test.images, refit=True).argmax(-1)
    accs = [metrics.clustering_metrics(test.labels, c)["acc"] for c in clusters.T]
    first_refit = clusters.shape[1] - settings.heads
    results.append({"variant": variant, "head": head, "acc": accs[head], "refit_accs": accs[first_refit:],
                    "seconds": seconds})
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="an InfoGAN run's workdir (its latest checkpoint is read)")
  parser.add_argument("--variants", default="10:3000:1024:1e-3,10:3000:1024:3e-3",
                      help="comma-separated heads:steps:dim:learning_rate")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--seed", type=int, default=0, help="the heads' initialisation and batches")
  args = parser.parse_args(argv)
  results = sweep(args.workdir, [parse_variant(v) for v in args.variants.split(",")], args.batch_size, args.seed)
  print("| heads | steps | dim | learning rate | chosen head: test ACC | best refit head | mean refit head | fit (s) |")
  print("|---|---|---|---|---|---|---|---|")
  for r in results:
    v = r["variant"]
    print(f"| {v['heads']} | {v['steps']} | {v['dim']} | {v['learning_rate']:g} | {r['head']}: {r['acc']:.3f} | "
          f"{max(r['refit_accs']):.3f} | {np.mean(r['refit_accs']):.3f} | {r['seconds']:.0f} |")
  return results


if __name__ == "__main__":
  main()
