"""The FID InceptionV3: its size against pytorch-fid's, the weights file, preprocessing.

Shapes come from `jax.eval_shape`; one real forward pass, at the smallest input the
network takes (75 px), so the file runs in seconds on CPU. Agreement of the outputs with
pytorch-fid's is checked by benchmarks/inception_vs_pytorch_fid.py (needs PyTorch).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax.evaluation import inception

# `sum(p.numel() for p in pytorch_fid.inception.fid_inception_v3().parameters())`, measured
# with torch 2.13 / torchvision 0.28 / pytorch-fid 0.3.0; `_pytorch_fid_param_count` derives it.
PYTORCH_FID_PARAMS = 23_850_960


def _pytorch_fid_param_count() -> tuple[int, int]:
  """(parameters, convolutions) of pytorch-fid's network, from its layer list: every
  BasicConv2d has a `k_h x k_w x in x out` kernel and a BatchNorm weight and bias of
  `out`; fc has 2048 x 1008 weights and 1008 biases."""
  def a(cin, pool):  # FIDInceptionA
    return [(cin, 64, 1, 1), (cin, 48, 1, 1), (48, 64, 5, 5), (cin, 64, 1, 1), (64, 96, 3, 3),
            (96, 96, 3, 3), (cin, pool, 1, 1)]

  def b(cin):  # InceptionB
    return [(cin, 384, 3, 3), (cin, 64, 1, 1), (64, 96, 3, 3), (96, 96, 3, 3)]

  def c(cin, c7):  # FIDInceptionC
    return [(cin, 192, 1, 1), (cin, c7, 1, 1), (c7, c7, 1, 7), (c7, 192, 7, 1), (cin, c7, 1, 1),
            (c7, c7, 7, 1), (c7, c7, 1, 7), (c7, c7, 7, 1), (c7, 192, 1, 7), (cin, 192, 1, 1)]

  def d(cin):  # InceptionD
    return [(cin, 192, 1, 1), (192, 320, 3, 3), (cin, 192, 1, 1), (192, 192, 1, 7), (192, 192, 7, 1),
            (192, 192, 3, 3)]

  def e(cin):  # FIDInceptionE_1 / _2
    return [(cin, 320, 1, 1), (cin, 384, 1, 1), (384, 384, 1, 3), (384, 384, 3, 1), (cin, 448, 1, 1),
            (448, 384, 3, 3), (384, 384, 1, 3), (384, 384, 3, 1), (cin, 192, 1, 1)]

  stem = [(3, 32, 3, 3), (32, 32, 3, 3), (32, 64, 3, 3), (64, 80, 1, 1), (80, 192, 3, 3)]
  convs = (stem + a(192, 32) + a(256, 64) + a(288, 64) + b(288) + c(768, 128) + c(768, 160)
           + c(768, 160) + c(768, 192) + d(768) + e(1280) + e(2048))
  return sum(i * o * h * w + 2 * o for i, o, h, w in convs) + 2048 * 1008 + 1008, len(convs)


def _abstract_variables(size: int = 299):
  return jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                        jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))


def _random_variables(seed: int = 0):
  """Variables of the right structure with random values (no init: it would run the net).

  Kernels are scaled by 1/sqrt(fan-in) and variances kept positive, so a forward pass
  with them stays finite."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = path[-1].key
    x = rng.standard_normal(s.shape, np.float32)
    if name == "kernel":
      x /= np.sqrt(np.prod(s.shape[:-1]))
    return np.abs(x) + 0.5 if name == "var" else x
  return jax.tree_util.tree_map_with_path(fill, _abstract_variables(75))


def test_param_count_and_output_shapes_match_pytorch_fid():
  expected, num_convs = _pytorch_fid_param_count()
  assert (expected, num_convs) == (PYTORCH_FID_PARAMS, 94)
  variables = _abstract_variables()
  assert inception.param_count(variables) == PYTORCH_FID_PARAMS
  assert set(variables) == {"params", "batch_stats"}
  pool3, logits = jax.eval_shape(inception.InceptionV3().apply, variables,
                                 jax.ShapeDtypeStruct((3, 299, 299, 3), jnp.float32))
  assert (pool3.shape, logits.shape) == ((3, 2048), (3, 1008))


def test_too_small_input_is_an_error():
  with pytest.raises(ValueError, match="H, W >= 75"):
    _abstract_variables(74)


def test_forward_pass_at_the_smallest_size():
  variables = _random_variables()
  x = np.random.default_rng(1).uniform(-1, 1, (2, 75, 75, 3)).astype(np.float32)
  pool3, logits = jax.jit(inception.InceptionV3().apply)(variables, x)
  assert pool3.shape == (2, 2048) and logits.shape == (2, 1008)
  assert np.isfinite(pool3).all() and np.isfinite(logits).all()
  assert (np.asarray(pool3) >= 0).all()  # An average of ReLU outputs.
  assert not np.allclose(pool3[0], pool3[1])
  fc = variables["params"]["fc"]
  np.testing.assert_allclose(logits, np.asarray(pool3) @ fc["kernel"] + fc["bias"], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """(random variables, the path they were saved to, the file's arrays)."""
  variables = _random_variables()
  path = str(tmp_path_factory.mktemp("inception") / "weights.npz")
  inception.save_weights(variables, path)
  with np.load(path) as f:
    arrays = dict(f)
  return variables, path, arrays


def test_weights_round_trip(saved):
  variables, path, _ = saved
  loaded = inception.load_weights(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(np.asarray(a), b)


def test_weights_file_is_pytorch_state_dict(saved):
  variables, _, arrays = saved
  assert len(arrays) == 472  # 94 x (conv.weight + 4 BatchNorm tensors) + fc.weight + fc.bias.
  assert all(v.dtype == np.float32 for v in arrays.values())
  params, stats = variables["params"], variables["batch_stats"]
  np.testing.assert_array_equal(arrays["Conv2d_1a_3x3.conv.weight"],
                                params["Conv2d_1a_3x3"]["conv"]["kernel"].transpose(3, 2, 0, 1))
  assert arrays["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
  assert arrays["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
  assert arrays["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
  np.testing.assert_array_equal(arrays["Mixed_5b.branch1x1.bn.weight"], params["Mixed_5b"]["branch1x1"]["bn"]["scale"])
  np.testing.assert_array_equal(arrays["Mixed_5b.branch1x1.bn.running_var"],
                                stats["Mixed_5b"]["branch1x1"]["bn"]["var"])
  np.testing.assert_array_equal(arrays["fc.weight"], params["fc"]["kernel"].T)
  assert arrays["fc.weight"].shape == (1008, 2048) and arrays["fc.bias"].shape == (1008,)


def _rewrite(arrays, tmp_path, **changes):
  path = str(tmp_path / "changed.npz")
  arrays = dict(arrays)
  for key, value in changes.items():
    key = key.replace("__", ".")
    if value is None:
      del arrays[key]
    else:
      arrays[key] = value
  np.savez(path, **arrays)
  return path


def test_num_batches_tracked_is_ignored(saved, tmp_path):
  path = _rewrite(saved[2], tmp_path, Mixed_5b__branch1x1__bn__num_batches_tracked=np.int64(7))
  assert inception.param_count(inception.load_weights(path)) == PYTORCH_FID_PARAMS


@pytest.mark.parametrize("change, message", [
    (dict(fc__bias=None), "missing key 'fc.bias'"),
    (dict(AuxLogits__fc__weight=np.zeros((1000, 768), np.float32)), "unexpected key 'AuxLogits.fc.weight'"),
    (dict(Mixed_5b__branch1x1__conv__weight=np.zeros((64, 192, 3, 3), np.float32)),
     r"key 'Mixed_5b.branch1x1.conv.weight' has shape \(64, 192, 3, 3\), expected \(64, 192, 1, 1\)"),
])
def test_mismatched_weights_file_is_a_clear_error(saved, tmp_path, change, message):
  path = _rewrite(saved[2], tmp_path, **change)
  with pytest.raises(ValueError, match=message) as error:
    inception.load_weights(path)
  assert path in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_npz_is_a_clear_error(tmp_path):
  path = tmp_path / "weights.npz"
  path.write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match="is not an .npz file"):
    inception.load_weights(str(path))


def _images(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("resize", inception.RESIZE_METHODS)
@pytest.mark.parametrize("size", [32, 320])
def test_preprocess_shape_and_range(resize, size):
  images = _images((2, size, size, 3))
  images[0, :size // 2] = 0  # Hard edges: bicubic overshoots them (clean-fid clips).
  images[0, size // 2:] = 255
  x = np.asarray(inception.preprocess(images, resize))
  assert x.shape == (2, 299, 299, 3) and x.dtype == np.float32
  assert x.min() >= -1 and x.max() <= 1
  assert x.min() == -1  # The zeros stay at the bottom of the range.


@pytest.mark.parametrize("resize", inception.RESIZE_METHODS)
def test_preprocess_repeats_grayscale(resize):
  gray = _images((2, 28, 28, 1))
  x = np.asarray(inception.preprocess(gray, resize))
  assert x.shape == (2, 299, 299, 3)
  # Resizing 1 channel or 3 vectorises differently: equal up to float rounding on some CPUs.
  np.testing.assert_allclose(x, np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1), resize)), atol=1e-6)


@pytest.mark.parametrize("resize, value", [("bilinear", 200 / 127.5 - 1), ("pil_bicubic", (200 - 128) / 128)])
def test_preprocess_constant_image_stays_constant(resize, value):
  x = np.asarray(inception.preprocess(np.full((1, 40, 50, 3), 200, np.uint8), resize))
  np.testing.assert_allclose(x, value, atol=1e-6)


def test_preprocess_bilinear_runs_under_jit():
  images = _images((2, 32, 32, 3))
  jitted = jax.jit(inception.preprocess, static_argnums=1)(images, "bilinear")
  np.testing.assert_allclose(jitted, inception.preprocess(images, "bilinear"), atol=1e-6)


def test_preprocess_pil_bicubic_is_clean_fid_resize():
  images = _images((1, 64, 48, 3))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Newer Pillow deprecates `mode=`.
    channels = [np.asarray(Image.fromarray(images[0, :, :, c].astype(np.float32), mode="F")
                           .resize((299, 299), Image.BICUBIC)).clip(0, 255) for c in range(3)]
  np.testing.assert_array_equal(inception.preprocess(images, "pil_bicubic")[0], (np.stack(channels, -1) - 128) / 128)


def test_preprocess_rejects_unknown_method_and_bad_images():
  with pytest.raises(ValueError, match="allowed: bilinear, pil_bicubic"):
    inception.preprocess(_images((1, 8, 8, 3)), "bicubic")
  with pytest.raises(ValueError, match="uint8"):
    inception.preprocess(_images((1, 8, 8, 3)).astype(np.float32), "bilinear")
  with pytest.raises(ValueError, match="C in"):
    inception.preprocess(_images((1, 8, 8, 4)), "bilinear")
