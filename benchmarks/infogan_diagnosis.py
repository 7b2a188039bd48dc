r"""Where an InfoGAN run's clustering of real images is lost: in the generator or in Q.

  python benchmarks/infogan_diagnosis.py --runs='runs/infogan_seed{seed}' --seeds=0,1,2

Clustering real digits by argmax Q(c | x) needs two things: the generator must draw one
digit class per code value, and Q, which learns the code on generated images only, must
carry it over to real ones. For each run (latest checkpoint) this measures:
  Q on fakes       how often Q recovers the code of the generator's own images;
  generator ACC    clustering accuracy of the code against the digit each generated image
                   shows, as read by a linear classifier (scikit-learn's logistic regression)
                   fitted on the run's discriminator features of the labelled training split
                   (its test accuracy is printed, so the reading can be trusted): the best
                   argmax Q could reach if it carried over perfectly;
  Q on real        the `categorical_code` ACC that eval.py reports (test split);
  via G's map      test accuracy when each real image's code is read as the digit its
                   code's generated images mostly show: Q's transfer, with the generator's
                   own map rather than the best one.
Prints a Markdown table, one row per seed, and each run's code x digit contingency.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np
from sklearn import linear_model, preprocessing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gan_jax  # noqa: E402
from gan_jax import data, sampling  # noqa: E402
from gan_jax.evaluation import features as features_lib, metrics, representation  # noqa: E402


def diagnose(workdir: str, num_fakes: int = 2000, seed: int = 0) -> dict:
  """The figures above for one InfoGAN workdir, and the code x digit contingency."""
  run = gan_jax.load_run(workdir)
  if not run.gan.num_categories:
    raise ValueError(f"{workdir}: not an InfoGAN run (config.infogan.categories is 0)")
  train, test = (gan_jax.load_dataset(run.config.data.name, split, image_size=run.config.image_size,
                                      channels=run.config.channels, resize=run.config.data.resize)
                for split in ("train", "test"))
  train_x = gan_jax.extract_features(run, train.images)
  scaler = preprocessing.StandardScaler().fit(train_x)
  reader = linear_model.LogisticRegression(max_iter=300, C=0.05).fit(scaler.transform(train_x), train.labels)
  reader_accuracy = reader.score(scaler.transform(gan_jax.extract_features(run, test.images)), test.labels)

  latents, codes, _ = sampling.sample_latents(jax.random.key(seed), num_fakes, run.gan)
  fakes = data.to_uint8(sampling.make_sample_fn(run.gan, run.config.seed)(run.state, latents))
  codes = np.asarray(codes)
  digits = reader.predict(scaler.transform(gan_jax.extract_features(run, fakes)))
  q = lambda images: features_lib.head_predictions(run.gan.discriminator, run.discriminator, images, "code_logits")
  refit = representation.refit_current(run.state)
  if run.gan.discriminator.code_heads > 1 or refit:  # The head eval.py reads.
    head, _ = representation.choose_code_head(run.gan.discriminator, run.discriminator, train.images, refit=refit)
    q = lambda images: representation.code_head_logits(run.gan.discriminator, run.discriminator, images,
                                                       refit=refit)[:, head].argmax(-1)
  q_real = q(test.images)
  code_to_digit = np.array([np.bincount(digits[codes == c], minlength=10).argmax() if np.any(codes == c) else -1
                            for c in range(run.gan.num_categories)])
  return {"step": run.step, "reader_test_accuracy": reader_accuracy,
          "q_on_fakes": float(np.mean(q(fakes) == codes)),
          "generator": metrics.clustering_metrics(digits, codes),
          "q_on_real": metrics.clustering_metrics(test.labels, q_real),
          "via_generator_map": float(np.mean(code_to_digit[q_real] == test.labels)),
          "code_to_digit": code_to_digit.tolist(),
          "contingency": metrics.contingency_matrix(codes, digits)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", required=True, help="InfoGAN workdir of each seed, with {seed}")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--num_fakes", type=int, default=2000)
  args = parser.parse_args(argv)
  results = {}
  print("| run | step | reader's test accuracy | Q on fakes | generator ACC | Q on real: ACC / NMI / ARI | via G's map |")
  print("|---|---|---|---|---|---|---|")
  for seed in (int(s) for s in args.seeds.split(",")):
    workdir = args.runs.format(seed=seed)
    r = results[workdir] = diagnose(workdir, args.num_fakes)
    real = r["q_on_real"]
    print(f"| {workdir} | {r['step']} | {r['reader_test_accuracy']:.3f} | {r['q_on_fakes']:.3f} | "
          f"{r['generator']['acc']:.3f} | {real['acc']:.3f} / {real['nmi']:.3f} / {real['ari']:.3f} | "
          f"{r['via_generator_map']:.3f} |", flush=True)
  for workdir, r in results.items():
    print(f"\n{workdir}: code -> digit {r['code_to_digit']}; rows: code, columns: digit read\n{r['contingency']}")
  return results


if __name__ == "__main__":
  main()
