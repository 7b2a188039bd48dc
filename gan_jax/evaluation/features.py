"""Image representations read from a discriminator's named intermediate activations.

Representations (`REPRESENTATIONS`):
  * `last_conv_avg`: the last convolution's activation, globally average-pooled (C values).
  * `last_conv_max`: the same, globally max-pooled: invariant to where in the image a
    feature fires, which is what clustering digits that differ by a shift needs.
  * `dcgan`: every convolution's activation max-pooled to a 4x4 grid, flattened and
    concatenated: the representation of the DCGAN paper (Radford et al. 2016, Sec. 5.1).
  * `pre_logits`: the flattened input of the final dense layer.
The GAN-native heads (`HEADS`) are read the same way: `code_logits` (InfoGAN's Q over
the categorical code; `code_logits_heads`, `N x H x K`, with several Q heads;
`code_logits_refit`, `N x R x K`, the heads fitted after training) and
`class_logits` (the K+1 discriminator's classes); their argmax is a cluster or a class
(`head_predictions`). So is `projection`, the contrastive loss's
projection head (where the config has one): the embedding SCAN's neighbour term pairs images by.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import decomposition

from gan_jax import data

REPRESENTATIONS = ("last_conv_avg", "last_conv_max", "dcgan", "pre_logits")
HEADS = ("code_logits", "class_logits", "code_logits_heads", "code_logits_refit")


def adaptive_max_pool(x_BxHxWxC: jax.Array, grid: int = 4) -> jax.Array:
  """Max over a `grid x grid` partition of the image (uneven sizes padded with -inf): `B x grid x grid x C`."""
  b, h, w, c = x_BxHxWxC.shape
  ph, pw = -(-h // grid) * grid, -(-w // grid) * grid
  x = jnp.pad(x_BxHxWxC, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), constant_values=-jnp.inf)
  return x.reshape(b, grid, ph // grid, grid, pw // grid, c).max(axis=(2, 4))


def select_representation(features: dict[str, jax.Array], representation: str) -> jax.Array:
  """`B x F` features of one representation from a discriminator's `features` dict."""
  convs = sorted((k for k in features if k.startswith("conv")), key=lambda k: int(k[4:]))
  if representation in ("last_conv_avg", "last_conv_max", "dcgan") and not convs:
    raise ValueError(f"representation {representation!r} reads convolutions (conv1, conv2, ...), which this "
                     f"discriminator's backbone does not name; it gives: {', '.join(features)}")
  if representation == "last_conv_avg":
    return features[convs[-1]].mean(axis=(1, 2))
  if representation == "last_conv_max":
    return features[convs[-1]].max(axis=(1, 2))
  if representation == "dcgan":
    return jnp.concatenate([adaptive_max_pool(features[k]).reshape(features[k].shape[0], -1) for k in convs], axis=1)
  if representation in ("pre_logits", "projection") or representation in HEADS:
    if representation not in features:
      raise ValueError(f"representation {representation!r}: this discriminator has no such head")
    return features[representation]
  raise ValueError(f"representation {representation!r} is not known; allowed: {', '.join(REPRESENTATIONS)}")


def discriminator_features(discriminator: nn.Module, variables, images_u8: np.ndarray, *,
                           representation: str | tuple[str, ...], batch_size: int = 500):
  """float32 `N x F` features of uint8 images `N x H x W x C`, `batch_size` images per jit call;
  with a tuple of names, a tuple of such arrays from one pass of the discriminator.

  Only one batch of activations is on the device at a time; the last batch is padded
  so every call has one shape (one compilation).
  """
  names = (representation,) if isinstance(representation, str) else tuple(representation)
  for name in names:  # An unknown name fails here, before any compilation.
    if name not in HEADS + ("projection",):
      select_representation({"conv1": jnp.zeros((1, 4, 4, 1)), "pre_logits": jnp.zeros((1, 1))}, name)
  extract = _extractor(discriminator, names)
  out = in_batches(lambda batch: extract(variables, batch), images_u8, batch_size)
  return out[0] if isinstance(representation, str) else out


def in_batches(fn, images_u8: np.ndarray, batch_size: int):
  """`fn` over `batch_size` images at a time, its outputs (an array or a tuple of them)
  concatenated on the host. The last batch is padded, so every call has one shape (one
  compilation), and only one batch of activations is on the device at a time."""
  out = []
  for start in range(0, len(images_u8), batch_size):
    batch = images_u8[start:start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), batch.dtype)])
    out.append(jax.tree.map(lambda x: np.asarray(x)[:batch_size - pad], jax.device_get(fn(batch))))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *out)


@functools.cache
def _extractor(discriminator: nn.Module, representations: tuple[str, ...]):
  @jax.jit
  def extract(variables, images_u8):
    _, features = discriminator.apply(variables, data.to_model_range(images_u8), train=False)
    return tuple(select_representation(features, name) for name in representations)
  return extract


def head_predictions(discriminator: nn.Module, variables, images_u8: np.ndarray, head: str,
                     batch_size: int = 500) -> np.ndarray:
  """int `N` (`N x H` for `code_logits_heads` and `code_logits_refit`): the argmax of a discriminator head (`HEADS`)
  for each uint8 image."""
  if head not in HEADS:
    raise ValueError(f"head {head!r}; allowed: {', '.join(HEADS)}")
  return discriminator_features(discriminator, variables, images_u8, representation=head,
                                batch_size=batch_size).argmax(-1)


def standardize(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Both float32 `N x D` splits scaled by the training split's per-feature mean and std."""
  train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6  # eps: constant features (e.g. border pixels).
  return (train_x - mean) / std, (test_x - mean) / std


def raw_pixel_features(images_u8: np.ndarray) -> np.ndarray:
  """The control representation: pixels in [0, 1], flattened: `N x (H*W*C)`."""
  return images_u8.reshape(len(images_u8), -1).astype(np.float32) / 255.0


def pca_whiten(train_x: np.ndarray, test_x: np.ndarray, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Both splits projected on the training split's top `dims` principal components, each
  scaled to unit variance (scikit-learn's `PCA(whiten=True)`): float32 `N x min(dims, D, N)`.

  Why: k-means weighs every direction by its variance, and a discriminator's features
  spend most of theirs on what separates real from fake; whitening the leading
  components lets the class structure they also hold decide the clusters.
  """
  pca = decomposition.PCA(min(dims, *train_x.shape), whiten=True, random_state=seed).fit(train_x)
  return pca.transform(train_x).astype(np.float32), pca.transform(test_x).astype(np.float32)
