"""InceptionV3 of the standard FID protocol in Flax: pytorch-fid's port of the TF graph.

`InceptionV3` is torchvision's Inception3 with pytorch-fid's FID patches
(`FIDInceptionA/C/E_1/E_2` in `pytorch_fid/inception.py`), i.e. the TensorFlow graph
`inception-2015-12-05` that the original FID code used:
  * the average pools of the `branch_pool` of InceptionA, InceptionC and the first
    InceptionE (Mixed_7b) ignore the zero padding (`count_include_pad=False`), as
    TensorFlow's do;
  * the second InceptionE (Mixed_7c) pools its `branch_pool` with a 3x3 max pool
    (stride 1, padding 1), a quirk of that graph;
  * no auxiliary classifier; the classifier has 1008 outputs (the graph's classes).
Every convolution is `BasicConv2d`: conv without bias, BatchNorm (eps 0.001, running
statistics) and ReLU. Inputs are `B x 299 x 299 x 3` in [-1, 1] (`preprocess` makes
them from uint8 images); outputs are the 2048 `pool3` features FID uses and the logits.

The weights are pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` converted once with
  python -m gan_jax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception.npz
(needs PyTorch) and read with `load_weights` (needs only NumPy); see `WEIGHTS_FORMAT`.
`benchmarks/inception_vs_pytorch_fid.py` checks the network against pytorch-fid's (on
CPU: float32 outputs agree to ~1e-5 relative, float64 ones to ~1e-13). On GPUs XLA would
run float32 convolutions in TF32; `generation.make_extractor` runs the network under
`jax.default_matmul_precision("highest")` (not yet checked on a GPU).
"""

from __future__ import annotations

import functools
import io
import math
import sys
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gan_jax import files

WEIGHTS_FORMAT = """\
A NumPy .npz file whose keys are the PyTorch state-dict names of pytorch-fid's
pt_inception-2015-12-05-6726825d.pth and whose values are float32 arrays in PyTorch
layout: convolutions `<module>.conv.weight` O x I x H x W (e.g. `Conv2d_1a_3x3.conv.weight`
32 x 3 x 3 x 3); their BatchNorms `<module>.bn.weight`, `.bn.bias`, `.bn.running_mean`,
`.bn.running_var` (e.g. `Mixed_5b.branch1x1.bn.running_var`); the classifier `fc.weight`
1008 x 2048 and `fc.bias` 1008. `num_batches_tracked` keys are ignored if present.
Written by `save_weights` and `convert_torch_checkpoint`, read by `load_weights`."""

RESIZE_METHODS = ("bilinear", "pil_bicubic")
IMAGE_SIZE = 299
# The smallest input for which Mixed_7a's stride-2 convolutions still see a 3x3 window.
MIN_IMAGE_SIZE = 75
NUM_CLASSES = 1008

# (flax collection, flax leaf name) -> PyTorch state-dict suffix, and back (a BatchNorm's
# `weight` is Flax's `scale`, any other module's its `kernel`).
_TORCH_LEAF = {("params", "kernel"): "weight", ("params", "scale"): "weight", ("params", "bias"): "bias",
               ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
_FLAX_LEAF = {"weight": ("params", "kernel"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nn.Module):
  """Conv (no bias) + BatchNorm (eps 0.001, running statistics) + ReLU: `B x H' x W' x features`."""
  features: int
  kernel_size: int | tuple[int, int]
  strides: int = 1
  padding: int | tuple[int, int] = 0  # Symmetric zero padding (rows, columns), as torch's Conv2d.

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, _pair(self.kernel_size), strides=_pair(self.strides),
                padding=[(p, p) for p in _pair(self.padding)], use_bias=False, name="conv")(x_BxHxWxC)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  # TensorFlow's SAME average pool divides by the number of real pixels under the window.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride_2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d (35 x 35 at 299 px): `B x H x W x (224 + pool_features)`."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch1x1 = BasicConv2d(64, 1, name="branch1x1")(x)
    branch5x5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
    branch5x5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(branch5x5)
    branch3x3dbl = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = BasicConv2d(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a, the 35 -> 17 reduction: `B x H' x W' x (480 + C)`."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = BasicConv2d(384, 3, strides=2, name="branch3x3")(x)
    branch3x3dbl = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, 3, strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_3x3_stride_2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (17 x 17 at 299 px), 7x7 factorised into 1x7 and 7x1: `B x H x W x 768`."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    branch1x1 = BasicConv2d(192, 1, name="branch1x1")(x)
    branch7x7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
    branch7x7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = BasicConv2d(192, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a, the 17 -> 8 reduction: `B x H' x W' x (512 + C)`."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
    branch3x3 = BasicConv2d(320, 3, strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, 3, strides=2, name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_3x3_stride_2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/7c (8 x 8 at 299 px): `B x H x W x 2048`.

  `max_pool_branch`: the TF graph's Mixed_7c pools `branch_pool` with a 3x3 max pool
  (pytorch-fid's FIDInceptionE_2) where Mixed_7b averages.
  """
  max_pool_branch: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch1x1 = BasicConv2d(320, 1, name="branch1x1")(x)
    branch3x3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3)], axis=-1)
    branch3x3dbl = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl)], axis=-1)
    if self.max_pool_branch:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    branch_pool = BasicConv2d(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionV3(nn.Module):
  """The FID InceptionV3 (inference only; BatchNorm uses the `batch_stats` collection).

  Submodule names are torchvision's, so a variable's path is its PyTorch state-dict name
  (`params/Mixed_5b/branch1x1/conv/kernel` <-> `Mixed_5b.branch1x1.conv.weight`).
  """

  @nn.compact
  def __call__(self, x_BxHxWx3: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x_BxHxWx3` in [-1, 1] (H = W = 299 in the protocol; at least 75) ->
    (`pool3_Bx2048`, the global average of Mixed_7c; `logits_Bx1008`)."""
    if x_BxHxWx3.ndim != 4 or x_BxHxWx3.shape[-1] != 3 or min(x_BxHxWx3.shape[1:3]) < MIN_IMAGE_SIZE:
      raise ValueError(f"InceptionV3 takes B x H x W x 3 images with H, W >= {MIN_IMAGE_SIZE} "
                       f"(299 for FID), got shape {x_BxHxWx3.shape}")
    x = BasicConv2d(32, 3, strides=2, name="Conv2d_1a_3x3")(x_BxHxWx3)
    x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_stride_2(x)
    x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_stride_2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool_branch=True, name="Mixed_7c")(x)
    pool3_Bx2048 = x.mean(axis=(1, 2))
    logits_Bx1008 = nn.Dense(NUM_CLASSES, name="fc")(pool3_Bx2048)  # Dropout is the identity at inference.
    return pool3_Bx2048, logits_Bx1008


def param_count(variables) -> int:
  """Number of scalars in `variables["params"]` (BatchNorm running statistics excluded)."""
  return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


@functools.cache
def _expected_shapes() -> dict[str, tuple[int, ...]]:
  """PyTorch state-dict name -> PyTorch-layout shape of every variable of `InceptionV3`."""
  abstract = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE, 3), jnp.float32))
  # Zero-strided arrays: a transposed view gives the PyTorch shape without allocating.
  return {name: _to_torch_layout(np.broadcast_to(np.float32(0), x.shape)).shape
          for name, x in _torch_named(abstract).items()}


def _torch_named(variables) -> dict[str, object]:
  """Flax variables (any leaves) keyed by PyTorch state-dict name, leaves unchanged."""
  named = {}
  for collection in ("params", "batch_stats"):
    for path, leaf in jax.tree_util.tree_flatten_with_path(dict(variables.get(collection, {})))[0]:
      keys = [p.key for p in path]
      named[".".join(keys[:-1] + [_TORCH_LEAF[collection, keys[-1]]])] = leaf
  return named


def _to_torch_layout(x: np.ndarray) -> np.ndarray:
  # Flax convolutions are H x W x I x O and Dense kernels in x out; PyTorch's O x I x H x W, out x in.
  return x.transpose(3, 2, 0, 1) if x.ndim == 4 else x.T if x.ndim == 2 else x


def _to_flax_layout(x: np.ndarray) -> np.ndarray:
  return x.transpose(2, 3, 1, 0) if x.ndim == 4 else x.T if x.ndim == 2 else x


def _check_state_dict(arrays: dict[str, np.ndarray], path: str) -> None:
  """Raises a one-line ValueError naming `path` and the first key that does not match."""
  expected = _expected_shapes()
  missing = [k for k in expected if k not in arrays]
  unexpected = [k for k in arrays if k not in expected]
  problem = None
  if missing:
    problem = f"missing key {missing[0]!r}"
  elif unexpected:
    problem = f"unexpected key {unexpected[0]!r}"
  else:
    for k, shape in expected.items():
      if tuple(arrays[k].shape) != shape:
        problem = f"key {k!r} has shape {tuple(arrays[k].shape)}, expected {shape}"
        break
  if problem:
    raise ValueError(f"{path} does not hold FID InceptionV3 weights: {problem} "
                     f"({len(missing)} missing, {len(unexpected)} unexpected; see inception.WEIGHTS_FORMAT)")


def _write_npz(arrays: dict[str, np.ndarray], path: str) -> None:
  # Through a buffer so that NumPy writes `path` itself, not `path + ".npz"`; atomically,
  # so an interrupted conversion leaves no truncated weights file.
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  files.write_atomic(path, buffer.getvalue())


def load_weights(path: str) -> dict:
  """`{"params": ..., "batch_stats": ...}` for `InceptionV3` from an .npz in `WEIGHTS_FORMAT`.

  Kernels are converted from PyTorch layout (O x I x H x W, fc out x in) to Flax's and
  placed on the default device. A file that does not match raises a one-line ValueError.
  """
  try:
    with np.load(path) as npz:
      arrays = {k: np.asarray(npz[k], np.float32) for k in npz.files if not k.endswith("num_batches_tracked")}
  except FileNotFoundError:
    raise
  except (OSError, ValueError, TypeError, zipfile.BadZipFile) as e:
    # TypeError: a bare .npy loads as one array, which is no context manager.
    raise ValueError(f"{path} is not an .npz file of InceptionV3 weights ({type(e).__name__}: {e})") from None
  _check_state_dict(arrays, path)
  variables = {"params": {}, "batch_stats": {}}
  for name, value in arrays.items():
    *modules, leaf = name.split(".")
    collection, flax_leaf = _FLAX_LEAF[leaf]
    if modules[-1] == "bn" and leaf == "weight":
      flax_leaf = "scale"
    node = variables[collection]
    for m in modules:
      node = node.setdefault(m, {})
    node[flax_leaf] = _to_flax_layout(value)
  return jax.device_put(variables)


def save_weights(variables, path: str) -> None:
  """Writes `InceptionV3` variables (`{"params", "batch_stats"}`) to `path` in `WEIGHTS_FORMAT`;
  `load_weights(path)` gives them back bit for bit."""
  arrays = {name: np.ascontiguousarray(_to_torch_layout(np.asarray(x, np.float32)))
            for name, x in _torch_named(variables).items()}
  _check_state_dict(arrays, path)
  _write_npz(arrays, path)


def convert_torch_checkpoint(pth_path: str, npz_path: str) -> None:
  """Converts pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a state dict) to an .npz
  in `WEIGHTS_FORMAT`. Needs PyTorch; the file is checked before anything is written."""
  try:
    import torch  # Only here: loading the converted weights needs no PyTorch.
  except ImportError:
    raise ImportError(f"converting {pth_path} needs PyTorch (pip install torch); "
                      f"load_weights on the converted .npz does not") from None
  state = torch.load(pth_path, map_location="cpu", weights_only=True)
  arrays = {k: v.detach().numpy().astype(np.float32) for k, v in state.items()
            if not k.endswith("num_batches_tracked")}
  _check_state_dict(arrays, pth_path)
  _write_npz(arrays, npz_path)


def preprocess(images_u8_BxHxWxC, resize: str):
  """uint8 images `B x H x W x C` (C = 1 or 3; grayscale repeated to 3) -> float32
  `B x 299 x 299 x 3` in [-1, 1], resized the way a FID protocol does.

  `resize`:
    * `"bilinear"` (pytorch-fid): `jax.image.resize` bilinear without antialiasing on
      values in [0, 255], half-pixel centres as torch's `F.interpolate(align_corners=False)`,
      then x / 127.5 - 1. Pure JAX: returns a jax.Array and can run under `jax.jit`.
    * `"pil_bicubic"` (clean-fid's "clean" mode): PIL bicubic on each image and channel as
      float32 (mode "F"), clipped to [0, 255] as clean-fid does, then (x - 128) / 128, the
      normalisation clean-fid applies before its Inception. Host NumPy: returns np.ndarray.
  """
  if resize not in RESIZE_METHODS:
    raise ValueError(f"resize {resize!r} is not known; allowed: {', '.join(RESIZE_METHODS)}")
  shape, dtype = images_u8_BxHxWxC.shape, images_u8_BxHxWxC.dtype
  if len(shape) != 4 or shape[-1] not in (1, 3) or dtype != np.uint8:
    raise ValueError(f"preprocess takes uint8 images B x H x W x C with C in (1, 3), got {dtype} {shape}")
  b, _, _, c = shape
  if resize == "bilinear":
    x = jnp.asarray(images_u8_BxHxWxC).astype(jnp.float32)
    x = jax.image.resize(x, (b, IMAGE_SIZE, IMAGE_SIZE, c), "bilinear", antialias=False)
    x = x / 127.5 - 1.0
    return jnp.broadcast_to(x, (b, IMAGE_SIZE, IMAGE_SIZE, 3))
  images = np.asarray(images_u8_BxHxWxC)
  x = np.empty((b, IMAGE_SIZE, IMAGE_SIZE, c), np.float32)
  for i in range(b):
    for ch in range(c):
      # A float32 2-D array is PIL mode "F", so the resize is in float, not quantised to uint8.
      channel = Image.fromarray(images[i, :, :, ch].astype(np.float32))
      x[i, :, :, ch] = np.asarray(channel.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
  x = (np.clip(x, 0.0, 255.0) - 128.0) / 128.0
  return np.ascontiguousarray(np.broadcast_to(x, (b, IMAGE_SIZE, IMAGE_SIZE, 3)))


def main(argv: list[str]) -> int:
  usage = "usage: python -m gan_jax.evaluation.inception convert IN.pth OUT.npz"
  if len(argv) != 4 or argv[1] != "convert":
    print(usage, file=sys.stderr)
    return 2
  convert_torch_checkpoint(argv[2], argv[3])
  variables = load_weights(argv[3])  # Proves the written file reads back.
  print(f"wrote {argv[3]}: {param_count(variables):,} parameters")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
