import functools
import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gan_jax import checkpoints
from gan_jax import data
from gan_jax import parallel
from gan_jax import training

from conftest import tiny_config


def init_state(gan, config):
  """`training.init_state` under `jax.jit`, written as the other test files write it (a lambda,
  no shardings): one program for the tiny config, compiled once by the session's cache."""
  return jax.jit(lambda: training.init_state(gan, config))()


def real_batches(shape, seed=0):
  """Images in [-1, 1] drawn by NumPy (JAX's random kernels would compile for each shape)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


def assert_trees_equal(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_one_step_updates_both_networks_and_compiles_once(config, monkeypatch):
  traces = []
  original = training.train_step
  monkeypatch.setattr(training, "train_step", lambda *a, **k: traces.append(1) or original(*a, **k))
  gan = training.make_gan(config)
  mesh = parallel.make_mesh()
  replicated = parallel.replicated(mesh)
  state = jax.jit(functools.partial(training.init_state, gan, config), out_shardings=replicated)()
  before = jax.device_get(state)
  # The training split, placed as train.py places it: the step compiled is a training run's.
  train = data.load_split(config.data, "train", image_size=28, channels=1)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  train_fn = training.make_train_fn(gan, config, mesh, num_examples=len(images))

  state, metrics = train_fn(state, images)
  after_one = jax.device_get(state)
  state, metrics = train_fn(state, images)
  assert len(traces) == 1, "the second call retraced the step"

  assert int(after_one["step"]) == 1 and int(state["step"]) == 2
  for net in ("generator", "discriminator"):
    changed = jax.tree.map(lambda x, y: not np.array_equal(x, y), before[net]["params"], after_one[net]["params"])
    assert all(jax.tree.leaves(changed)), f"{net}: some parameters did not move"
  assert not np.array_equal(before["generator"]["batch_stats"]["project_bn"]["mean"],
                            after_one["generator"]["batch_stats"]["project_bn"]["mean"])
  assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm",
                          "d_param_norm", "g_param_norm", "d_contrastive_loss", "d_contrastive_acc"}
  assert all(np.isfinite(jax.device_get(v)).all() for v in metrics.values())


def test_n_dis_and_gradient_penalty_step(config):
  config = tiny_config(n_dis=2, loss="wasserstein", gradient_penalty=10.0)
  gan = training.make_gan(config)
  state = init_state(gan, config)
  real = real_batches((2, 8, 28, 28, 1))
  step = jax.jit(functools.partial(training.train_step, gan=gan, gradient_penalty=10.0))
  new_state, metrics = step(state, real)
  assert float(metrics["gp"]) > 0
  # Two discriminator updates: Adam's count reached 2, the generator's 1.
  assert int(jax.tree.leaves(new_state["d_opt_state"])[0]) == 2
  assert int(jax.tree.leaves(new_state["g_opt_state"])[0]) == 1


def test_checkpoint_round_trip(tmp_path, config):
  gan = training.make_gan(config)
  init = functools.partial(training.init_state, gan, config)
  state = init_state(gan, config)
  state = {**state, "step": jnp.asarray(7, jnp.int32)}
  manager = checkpoints.make_manager(str(tmp_path), keep=2)
  checkpoints.save(manager, 7, state)
  manager.wait_until_finished()
  abstract = checkpoints.abstract_like(jax.eval_shape(init), parallel.replicated(parallel.make_mesh()))
  restored = checkpoints.restore(manager, abstract)
  assert manager.latest_step() == 7
  assert_trees_equal(jax.device_get(state), jax.device_get(restored))
  assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_end_to_end_on_mock_tfds(tmp_path):
  config = tiny_config(total_steps=2, **{"data.name": "mnist", "data.download": False})
  with tfds.testing.mock_data(num_examples=32):
    state = training.train_and_evaluate(config, str(tmp_path))
  assert int(state["step"]) == 2
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
  assert os.path.exists(tmp_path / "samples" / "step_2.png")
  assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["data"]["name"] == "mnist" and saved["total_steps"] == 2


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, r"config.batch_size=0 must be positive"),
    ("g_optimizer.name", "adamm", r"config.g_optimizer.name='adamm'; allowed: adam, adamw"),
    ("save_every", 3, r"config.save_every=3 must be a multiple of config.steps_per_call=2"),
    ("image_size", 48, r"config.image_size=48 cannot be produced"),
    ("rotation.d_weight", -1.0, r"config.rotation.d_weight=-1.0 must be >= 0"),
    ("eval_every", 3, r"config.eval_every=3 must be a multiple of config.steps_per_call=2"),
    ("model.dtype", "float16", r"config.model.dtype='float16'; allowed: float32, bfloat16"),
    ("model.conv_backward", "fast", r"config.model.conv_backward='fast'; allowed: phase, xla"),
])
def test_bad_config_values_are_named(field, value, message):
  config = tiny_config(steps_per_call=2, **{field: value})
  with pytest.raises(ValueError, match=message):
    training.validate_config(config)


def test_divergence_stops_before_a_nonfinite_checkpoint(tmp_path):
  config = tiny_config(total_steps=4, log_every=2, save_every=2,
                       **{"g_optimizer.learning_rate": 1e30, "d_optimizer.learning_rate": 1e30})
  with pytest.raises(FloatingPointError, match=r"non-finite .* between steps 0 and 2"):
    training.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(tmp_path / "checkpoints")


def test_ema_follows_the_warmed_up_decay(config):
  gan = training.make_gan(config)
  state = init_state(gan, config)
  real = real_batches((1, 8, 28, 28, 1))
  new, _ = jax.jit(functools.partial(training.train_step, gan=gan, ema_decay=0.999))(state, real)
  # Step 0 uses decay min(0.999, 1/10): ema = 0.1 * old + 0.9 * new params.
  expected = jax.tree.map(lambda old, p: 0.1 * old + 0.9 * p, state["g_ema_params"], new["generator"]["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new["g_ema_params"], expected)


def test_samples_come_from_the_ema_generator(config):
  gan = training.make_gan(config)
  state = init_state(gan, config)
  sample = training.make_sample_fn(gan, seed=0, num_stat_samples=64)
  rng = np.random.default_rng(1)  # NumPy's: JAX's random kernels would compile for each shape.
  z = jnp.asarray(rng.standard_normal((4, 16), np.float32))
  images = sample(state, z)
  assert images.shape == (4, 28, 28, 1)
  noise = lambda tree: jax.tree.map(lambda p: p + 0.5 * rng.standard_normal(p.shape, np.float32), tree)
  # The training generator's weights and running statistics do not enter the samples ...
  other = {**state, "generator": noise(state["generator"])}
  np.testing.assert_allclose(sample(other, z), images, atol=1e-6)
  # ... the EMA weights do.
  assert not np.allclose(sample({**state, "g_ema_params": noise(state["g_ema_params"])}, z), images, atol=1e-3)


def test_scan_and_unrolled_loops_agree(config):
  """The accelerator form (lax.scan) of n_dis / steps_per_call equals the CPU form."""
  gan = training.make_gan(tiny_config(n_dis=2))
  state = init_state(gan, config)
  real = real_batches((3, 2, 8, 28, 28, 1))
  step = functools.partial(training.train_step, gan=gan)
  run = lambda unroll: jax.jit(lambda s, r: training.repeat(step, s, r, 3, unroll=unroll))(state, real)
  (scanned, m_scanned), (unrolled, m_unrolled) = run(False), run(True)
  assert int(scanned["step"]) == 3 and m_scanned["d_loss"].shape == (3,)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5), scanned, unrolled)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5), m_scanned, m_unrolled)


def test_steps_per_call_fuses_steps(tmp_path):
  state = training.train_and_evaluate(tiny_config(steps_per_call=2, total_steps=4, log_every=2), str(tmp_path))
  assert int(state["step"]) == 4 and sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  with pytest.raises(ValueError, match=r"checkpoint is at step 4, which config.steps_per_call=3"):
    training.train_and_evaluate(tiny_config(steps_per_call=3, total_steps=6, log_every=3, save_every=3,
                                            sample_every=3), str(tmp_path))


def test_fused_steps_equal_single_steps(four_steps_on_one_device):
  import parallel_worker
  single = four_steps_on_one_device
  fused = parallel_worker.flatten(parallel_worker.run_steps(tiny_config(steps_per_call=2), 2))
  assert int(fused["['step']"]) == 4
  for k in single:
    np.testing.assert_allclose(fused[k], single[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_training_calls_make_no_host_device_transfers(tmp_path, monkeypatch):
  """Every call of the loop's compiled step runs with transfers disallowed: the state, the
  dataset and the metrics it returns stay on the device (metrics leave at log steps only)."""
  calls = []

  def guarded_make_train_fn(*args, **kwargs):
    train_fn = make_train_fn(*args, **kwargs)

    def call(*call_args):
      with jax.transfer_guard("disallow"):
        out = train_fn(*call_args)
      calls.append(out[1])
      return out
    return call

  make_train_fn = training.make_train_fn
  monkeypatch.setattr(training, "make_train_fn", guarded_make_train_fn)
  state = training.train_and_evaluate(tiny_config(total_steps=4, log_every=2, save_every=4, sample_every=4),
                                      str(tmp_path))
  assert int(state["step"]) == 4 and len(calls) == 4
  assert all(isinstance(v, jax.Array) for m in calls for v in m.values())


def test_bfloat16_compute_keeps_float32_parameters():
  config = tiny_config(**{"model.dtype": "bfloat16"})
  gan = training.make_gan(config)
  state = init_state(gan, config)
  _, features = gan.discriminator.apply(state["discriminator"], jnp.zeros((2, 28, 28, 1)))
  assert features["conv1"].dtype == jnp.bfloat16  # Computed in bfloat16 ...
  real = real_batches((1, 8, 28, 28, 1))
  new, metrics = jax.jit(functools.partial(training.train_step, gan=gan))(state, real)
  dtypes = {x.dtype for x in jax.tree.leaves((new["generator"], new["discriminator"], new["g_opt_state"],
                                               new["d_opt_state"], new["g_ema_params"]))
            if jnp.issubdtype(x.dtype, jnp.floating)}
  assert dtypes == {jnp.dtype(jnp.float32)}  # ... stored and updated in float32.
  assert all(np.isfinite(float(v)) for v in metrics.values())
