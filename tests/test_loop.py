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
from gan_jax import loop
from gan_jax import parallel
from gan_jax import population
from gan_jax import runs
from gan_jax import state as state_lib
from gan_jax import step as step_lib

from conftest import initial_state, run_steps, tiny_config


def assert_trees_equal(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_checkpoint_round_trip(tmp_path, config):
  gan, state = initial_state(config)
  init = functools.partial(state_lib.init_state, gan, config)
  state = {**state, "step": jnp.asarray(7, jnp.int32)}
  manager = checkpoints.make_manager(str(tmp_path), keep=2)
  checkpoints.save(manager, 7, state)
  manager.wait_until_finished()
  abstract = checkpoints.abstract_like(jax.eval_shape(init), parallel.replicated(parallel.make_mesh()))
  restored = checkpoints.restore(manager, abstract)
  assert manager.latest_step() == 7
  assert_trees_equal(jax.device_get(state), jax.device_get(restored))
  assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_a_single_runs_checkpoint_without_the_member_axis_restores_as_a_population_of_one(tmp_path, config):
  # Checkpoints written before a single run had a member axis (up to 282e9fe) hold the
  # state unstacked; they restore, and resume, into the population of one.
  gan, state = initial_state(config)
  manager = checkpoints.make_manager(str(tmp_path), keep=2)
  checkpoints.save(manager, 0, state)
  manager.wait_until_finished()
  mesh = parallel.make_mesh()
  abstract = checkpoints.abstract_like(jax.eval_shape(lambda: population.init_state(gan, config)),
                                       parallel.by_member(mesh))
  assert not checkpoints.shape_differences(checkpoints.saved_shapes(manager, 0), abstract)
  restored = checkpoints.restore(manager, abstract, 0)
  assert restored["step"].shape == (1,) and restored["step"].sharding == parallel.by_member(mesh)
  assert_trees_equal(jax.device_get(restored), population.stack([jax.device_get(state)]))
  # Of another width, it names what differs from the state without the axis, not every array.
  wider = tiny_config(**{"model.discriminator_features": 16})
  wider_shapes = jax.eval_shape(lambda: population.init_state(state_lib.make_gan(wider), wider))
  differences = checkpoints.shape_differences(checkpoints.saved_shapes(manager, 0), wider_shapes)
  assert len(differences) == 24 and differences[0] == ("discriminator/params/conv1/bias is float32[8] in the "
                                                       "checkpoint, float32[16] here"), differences[:2]
  # A population of two does not take it.
  two = tiny_config(**{"population.seeds": 2})
  assert checkpoints.shape_differences(checkpoints.saved_shapes(manager, 0),
                                       jax.eval_shape(lambda: population.init_state(gan, two)))
  manager.close()


def test_end_to_end_on_mock_tfds(tmp_path):
  config = tiny_config(total_steps=2, **{"data.name": "mnist", "data.download": False})
  with tfds.testing.mock_data(num_examples=32):
    state = loop.train_and_evaluate(config, str(tmp_path))
  assert state["step"].tolist() == [2]
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
  assert os.path.exists(tmp_path / "samples" / "step_2.png")
  assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["data"]["name"] == "mnist" and saved["total_steps"] == 2


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, r"config.batch_size=0 must be positive"),
    ("g_optimizer.schedule", "cosine", r"config.g_optimizer.schedule='cosine'; allowed: constant, linear"),
    ("save_every", 3, r"config.save_every=3 must be a multiple of config.steps_per_call=2"),
    ("image_size", 48, r"config.image_size=48 cannot be produced"),
    ("contrastive.weight", -1.0, r"config.contrastive.weight=-1.0 must be >= 0"),
    ("eval_every", 3, r"config.eval_every=3 must be a multiple of config.steps_per_call=2"),
    ("model.dtype", "float16", r"config.model.dtype='float16'; allowed: float32, bfloat16"),
    ("model.conv_backward", "fast", r"config.model.conv_backward='fast'; allowed: phase, xla"),
])
def test_bad_config_values_are_named(field, value, message):
  config = tiny_config(steps_per_call=2, **{field: value})
  with pytest.raises(ValueError, match=message):
    loop.validate_config(config)


def test_divergence_stops_before_a_nonfinite_checkpoint(tmp_path):
  config = tiny_config(total_steps=4, log_every=2, save_every=2,
                       **{"g_optimizer.learning_rate": 1e30, "d_optimizer.learning_rate": 1e30})
  with pytest.raises(FloatingPointError, match=r"non-finite .* between steps 0 and 2"):
    loop.train_and_evaluate(config, str(tmp_path))
  assert not os.listdir(tmp_path / "checkpoints")


def test_steps_per_call_fuses_steps(tmp_path):
  state = loop.train_and_evaluate(tiny_config(steps_per_call=2, total_steps=4, log_every=2), str(tmp_path))
  assert state["step"].tolist() == [4] and sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  with pytest.raises(ValueError, match=r"checkpoint is at step 4, which config.steps_per_call=3"):
    loop.train_and_evaluate(tiny_config(steps_per_call=3, total_steps=6, log_every=3, save_every=3,
                                            sample_every=3), str(tmp_path))


def test_fused_steps_equal_single_steps(four_steps_on_one_device):
  import parallel_worker
  single = four_steps_on_one_device
  fused = parallel_worker.flatten(run_steps(tiny_config(steps_per_call=2), 2))
  assert fused["['step']"].tolist() == [4]
  for k in single:
    np.testing.assert_allclose(fused[k], single[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_training_calls_make_no_host_device_transfers(tmp_path, monkeypatch):
  """Every call of the loop's compiled step runs with transfers disallowed: the state, the
  dataset and the metrics it returns stay on the device (metrics leave at log steps only)."""
  calls = []

  def guarded_make_train_fn(*args, **kwargs):
    train_fn = make_train_fn(*args, **kwargs)

    def call(*call_args, **call_kwargs):
      with jax.transfer_guard("disallow"):
        out = train_fn(*call_args, **call_kwargs)
      calls.append(out[1])
      return out
    return call

  make_train_fn = step_lib.make_train_fn
  monkeypatch.setattr(step_lib, "make_train_fn", guarded_make_train_fn)
  state = loop.train_and_evaluate(tiny_config(total_steps=4, log_every=2, save_every=4, sample_every=4),
                                      str(tmp_path))
  assert state["step"].tolist() == [4] and len(calls) == 4
  assert all(isinstance(v, jax.Array) for m in calls for v in m.values())




def test_sngan_config_trains_with_spectral_norm_state_in_the_train_state(tmp_path):
  config = tiny_config("cifar10_sngan", total_steps=2, n_dis=2, **{
      "data.download": False, "model.generator_features": 8, "model.discriminator_features": 8})
  _, initial = initial_state(config)
  with tfds.testing.mock_data(num_examples=64):
    state = population.unstack(jax.device_get(loop.train_and_evaluate(config, str(tmp_path))), 0)  # The run.
  stats = state["discriminator"]["batch_stats"]
  u_path = ("block1", "conv1", "sn", "conv/kernel/u")
  before, after = (functools.reduce(dict.__getitem__, u_path, s) for s in
                   (jax.device_get(initial["discriminator"]["batch_stats"]), stats))
  assert not np.allclose(before, after)  # 2 steps x n_dis 2 power iterations moved u.
  assert int(state["d_opt_state"][0].count) == 4
  # The checkpoint holds the spectral-norm state with the parameters.
  restored = jax.device_get(runs.load_run(str(tmp_path)).discriminator)
  np.testing.assert_array_equal(functools.reduce(dict.__getitem__, u_path, restored["batch_stats"]), after)
