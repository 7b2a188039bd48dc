"""A classifier of the dataset's own classes, trained once, whose features measure generation.

Inception features describe ImageNet photographs; on 28-pixel digits they are a poor
ruler (and their weights cannot be downloaded here). For MNIST-like data the usual
substitute is a classifier trained on the labelled training split, its penultimate layer
standing in for Inception's pool3 and its softmax for Inception's in the Inception Score.
Trained on first use, saved under the cache directory keyed by what it was trained on,
and reused by every later evaluation, so scores of different runs share one ruler.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data
from gan_jax import files
from gan_jax.evaluation import features as features_lib

FEATURE_DIM = 128
# Training recipe; part of the cache key, so a change trains a new classifier.
RECIPE = dict(steps=1000, batch_size=64, learning_rate=1e-3, seed=0)


class Classifier(nn.Module):
  """Three 3x3 convolutions of stride 2 (32, 64, 128 channels, ReLU), a 128-unit layer (the
  features), K logits: small enough to train in under a minute on a CPU."""
  num_classes: int

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x_BxHxWxC
    for features in (32, 64, 128):
      x = nn.relu(nn.Conv(features, (3, 3), strides=2)(x))
    features = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1)))
    return features, nn.Dense(self.num_classes)(features)


def train(images_u8: np.ndarray, labels: np.ndarray, num_classes: int, *, steps: int, batch_size: int,
          learning_rate: float, seed: int):
  """Variables of a `Classifier` fitted to (images, labels) with Adam and cross-entropy;
  images uint8 `N x H x W x C`, labels int `N`."""
  model = Classifier(num_classes)
  images, labels = jnp.asarray(images_u8), jnp.asarray(labels)
  key = jax.random.PRNGKey(seed)
  params = model.init(jax.random.fold_in(key, 0), data.to_model_range(images[:1]))["params"]
  tx = optax.adam(learning_rate)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, i):
    idx = data.batch_indices(jax.random.fold_in(key, 1), i, num_examples=images.shape[0], batch_size=batch_size)
    loss_fn = lambda p: optax.softmax_cross_entropy_with_integer_labels(
        model.apply({"params": p}, data.to_model_range(images[idx]))[1], labels[idx]).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # A Python loop of compiled steps, not lax.scan: XLA:CPU runs convolutions inside loops
  # many times slower (jax-ml/jax#12868; docs/research_log.md, "Retired scripts").
  opt_state, losses = tx.init(params), []
  for i in range(steps):
    params, opt_state, loss = step(params, opt_state, i)
    losses.append(loss)
  logging.info("Domain classifier: cross-entropy %.3f over the last 100 of %d steps.",
               float(np.mean(jax.device_get(losses[-100:]))), steps)
  return {"params": params}


def apply_fn(num_classes: int, batch_size: int = 500):
  """`fn(variables, images_u8) -> (features N x 128, logits N x K)` in batches, as numpy."""
  model = Classifier(num_classes)
  apply = jax.jit(lambda v, x: model.apply(v, data.to_model_range(x)))

  return lambda variables, images_u8: features_lib.in_batches(lambda x: apply(variables, x), images_u8, batch_size)


def load_or_train(cache_dir: str, train_split: data.ImageDataset, test_split: data.ImageDataset | None = None
                  ) -> tuple[Any, dict[str, Any]]:
  """(variables, info) of the classifier of `train_split`, from the cache or trained now.

  The cache key hashes the training images, labels and `RECIPE`; `info` has the file, its
  SHA-256 and the classifier's accuracy on `test_split` (measured when it was trained).
  """
  if train_split.labels is None:
    raise ValueError(f"config.evals.generation.extractor='domain_classifier' needs labels, and {train_split.name} "
                     "has none; use extractor='inception_v3'")
  digest = hashlib.sha256()
  for part in (train_split.images, train_split.labels, json.dumps(RECIPE, sort_keys=True).encode()):
    digest.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else part)
  stem = os.path.join(cache_dir, "domain_classifier", f"{files.safe_name(train_split.name)}_{digest.hexdigest()[:16]}")
  num_classes = int(train_split.num_classes)
  template = {"params": jax.eval_shape(lambda: Classifier(num_classes).init(
      jax.random.PRNGKey(0), jnp.zeros((1, *train_split.images.shape[1:]))))["params"]}
  if os.path.isfile(stem + ".msgpack") and os.path.isfile(stem + ".json"):
    with open(stem + ".msgpack", "rb") as f:
      blob = f.read()
    variables = flax.serialization.from_bytes(template, blob)
    with open(stem + ".json") as f:
      info = json.load(f)
  else:
    logging.info("Training the domain classifier of %s (%d images); cached in %s.", train_split.name,
                 len(train_split), stem)
    variables = train(train_split.images, train_split.labels, num_classes, **RECIPE)
    blob = flax.serialization.to_bytes(variables)
    info = {"trained_on": train_split.name, "num_train": len(train_split), "num_classes": num_classes,
            "recipe": RECIPE}
    if test_split is not None and test_split.labels is not None:
      logits = apply_fn(num_classes)(variables, test_split.images)[1]
      info.update(test_split=test_split.name, test_accuracy=float(np.mean(logits.argmax(1) == test_split.labels)))
    files.write_atomic(stem + ".msgpack", blob)
    files.write_json(stem + ".json", info)
  info = {**info, "file": stem + ".msgpack", "sha256": hashlib.sha256(blob).hexdigest()}
  return variables, info
