import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from gan_jax import data
from gan_jax import parallel


def data_config(**fields):
  base = dict(name="mnist_5k", data_dir=None, resize="pad", download=False)
  base.update(fields)
  return ml_collections.ConfigDict(base)


def test_mnist_5k_split_is_fixed_stratified_and_disjoint():
  train_x, train_y = data.mnist_5k("train")
  test_x, test_y = data.mnist_5k("test")
  assert train_x.shape == (4000, 28, 28, 1) and test_x.shape == (1000, 28, 28, 1)
  assert train_x.dtype == np.uint8 and train_x.max() == 255
  np.testing.assert_array_equal(np.bincount(train_y), [400] * 10)
  np.testing.assert_array_equal(np.bincount(test_y), [100] * 10)
  train_rows = {row.tobytes() for row in train_x}
  assert not any(row.tobytes() in train_rows for row in test_x)
  again_x, _ = data.mnist_5k("test")
  np.testing.assert_array_equal(again_x, test_x)


def test_load_split_pads_mnist_to_32_rgb():
  ds = data.load_split(data_config(), "test", image_size=32, channels=3)
  assert ds.images.shape == (1000, 32, 32, 3) and ds.num_classes == 10
  assert ds.images[:, :2].max() == 0 and ds.images[:, :, -2:].max() == 0  # Black padding.
  np.testing.assert_array_equal(ds.images[..., 0], ds.images[..., 2])  # Gray tiled to RGB.


def test_fit_images_resizes_and_converts_channels():
  rgb = np.full((2, 64, 64, 3), [255, 0, 0], np.uint8)
  out = data.fit_images(rgb, 32, 1, resize="resize")
  assert out.shape == (2, 32, 32, 1)
  assert np.all(out == 76)  # 0.299 * 255 = 76.2: ITU-R 601 luma of pure red.
  with pytest.raises(ValueError, match="config.data.resize='crop'"):
    data.fit_images(rgb, 32, 1, resize="crop")


def test_fit_images_auto_pads_near_sizes_and_resizes_small_images():
  digits = np.full((2, 28, 28, 1), 200, np.uint8)
  np.testing.assert_array_equal(data.fit_images(digits, 32, 1), data.fit_images(digits, 32, 1, resize="pad"))
  small = np.full((2, 8, 8, 1), 200, np.uint8)
  out = data.fit_images(small, 32, 1)
  assert np.all(out == 200)  # Resized to fill the frame; padding would leave 7/8 of it black.
  assert data.fit_images(small, 32, 1, resize="pad").mean() < 200 / 8


def test_model_range_round_trip():
  u8 = np.arange(256, dtype=np.uint8)
  x = data.to_model_range(jnp.asarray(u8))
  assert float(x.min()) == -1.0 and float(x.max()) == 1.0
  np.testing.assert_array_equal(data.to_uint8(x), u8)


def test_batch_indices_are_a_pure_function_of_step_and_cover_each_epoch():
  key = jax.random.PRNGKey(3)
  fn = jax.jit(lambda step: data.batch_indices(key, step, num_examples=10, batch_size=3))
  epoch0 = np.concatenate([fn(s) for s in range(3)])
  assert len(set(epoch0.tolist())) == 9  # 3 steps per epoch, no repeats, one left out.
  # Step 4 is position 1 of epoch 1: the second slice of that epoch's permutation, jit or not.
  expected = jax.random.permutation(jax.random.fold_in(key, 1), 10)[3:6]
  np.testing.assert_array_equal(fn(4), expected)
  np.testing.assert_array_equal(data.batch_indices(key, 4, num_examples=10, batch_size=3), expected)
  assert not np.array_equal(np.concatenate([fn(s) for s in range(3, 6)]), epoch0)  # Reshuffled.


def test_from_arrays_accepts_unit_floats():
  images = np.random.default_rng(0).random((5, 28, 28))
  ds = data.from_arrays(images, np.arange(5), image_size=32, channels=1)
  assert ds.images.shape == (5, 32, 32, 1) and ds.images.dtype == np.uint8 and ds.num_classes == 5


def _write_folder(root, classes=("cat", "dog"), per_class=3, size=(10, 12)):
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(os.path.join(root, c))
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(os.path.join(root, c, f"{i}.png"))


def test_image_folder_reads_class_subfolders(tmp_path):
  _write_folder(str(tmp_path))
  ds = data.load_split(data_config(name="image_folder", data_dir=str(tmp_path), resize="resize"),
                       "train", image_size=32, channels=3)
  assert ds.images.shape == (6, 32, 32, 3) and ds.num_classes == 2
  np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1, 1])


def test_image_folder_errors_are_clear(tmp_path):
  cfg = data_config(name="image_folder", data_dir=str(tmp_path))
  with pytest.raises(data.DatasetError, match="has no class subfolders"):
    data.load_split(cfg, "train", image_size=32, channels=3)
  os.makedirs(tmp_path / "a")
  with pytest.raises(data.DatasetError, match="holds no images"):
    data.load_split(cfg, "train", image_size=32, channels=3)
  (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
  with pytest.raises(data.DatasetError, match="cannot read .*broken.png"):
    data.load_split(cfg, "train", image_size=32, channels=3)


def test_tfds_dataset_through_mock_data():
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load_split(data_config(name="mnist"), "train", image_size=32, channels=1)
  assert ds.images.shape == (12, 32, 32, 1) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (12,)


def test_missing_tfds_data_offline_is_one_clear_error(tmp_path):
  with pytest.raises(data.DatasetError) as info:
    data.load_split(data_config(name="cifar10", data_dir=str(tmp_path)), "train", image_size=32, channels=3)
  message = str(info.value)
  assert "'cifar10'" in message and str(tmp_path) in message and "tfds build cifar10" in message


def test_unknown_dataset_name_is_clear():
  with pytest.raises(data.DatasetError, match="config.data.name='cifar11' is not a tensorflow-datasets"):
    data.load_split(data_config(name="cifar11"), "train", image_size=32, channels=3)


def fake_process(monkeypatch, position, num_processes, local_devices):
  """Makes `load_process_share` see this process at `position` of a multi-process mesh."""
  monkeypatch.setattr(parallel, "process_share", lambda mesh: (position, num_processes, local_devices))


def test_process_share_of_an_in_memory_source_is_a_contiguous_part(monkeypatch):
  whole = data.load_split(data_config(), "train", image_size=28, channels=1)
  fake_process(monkeypatch, 1, 2, 3)  # Second of two processes, three devices each.
  share = data.load_process_share(data_config(), "train", image_size=28, channels=1, mesh=None)
  # 4,000 images: 2,000 per process, cut to 1,998 for three devices.
  np.testing.assert_array_equal(share.images, whole.images[2000:3998])
  np.testing.assert_array_equal(share.labels, whole.labels[2000:3998])
  assert share.name == "mnist_5k:train[2000:3998]"


def test_one_process_keeps_the_whole_split_less_what_its_devices_cannot_divide(monkeypatch):
  fake_process(monkeypatch, 0, 1, 1)
  assert data.load_process_share(data_config(), "test", image_size=28, channels=1, mesh=None).name == "mnist_5k:test"
  fake_process(monkeypatch, 0, 1, 3)
  assert len(data.load_process_share(data_config(), "test", image_size=28, channels=1, mesh=None)) == 999


def test_a_tfds_process_reads_only_its_own_part(monkeypatch):
  read = []
  tfds_split = data._tfds_split
  monkeypatch.setattr(data, "_tfds_split", lambda name, split, *a: read.append(split) or tfds_split(name, split, *a))
  fake_process(monkeypatch, 1, 2, 4)
  with tfds.testing.mock_data(num_examples=10):  # Mock data ignores the part: 10 images whatever it asks.
    share = data.load_process_share(data_config(name="mnist"), "train", image_size=32, channels=1, mesh=None)
  assert read == tfds.even_splits("train", n=2, drop_remainder=True)[1:]
  assert len(share) == 8 and share.name == "mnist:train part 2/2"
