"""The update step: what it updates, the batches it makes for the terms, its weights as values."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from configs import base
from conftest import initial_population, initial_state, jit_step, tiny_config
from gan_jax import augment
from gan_jax import data
from gan_jax import parallel
from gan_jax import population
from gan_jax import sampling
from gan_jax import state as state_lib
from gan_jax import step as step_lib
from gan_jax.terms import contrastive


def real_batches(shape, seed=0):
  """Images in [-1, 1] drawn by NumPy (JAX's random kernels would compile for each shape)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


def test_one_step_updates_both_networks_and_compiles_once_whatever_the_weights(config, monkeypatch):
  traces = []
  original = step_lib.train_step
  monkeypatch.setattr(step_lib, "train_step", lambda *a, **k: traces.append(1) or original(*a, **k))
  mesh = parallel.make_mesh()
  # Placed as train_and_evaluate places it: a different sharding would be another program.
  gan, state = initial_population(config, mesh=mesh)
  before = jax.device_get(state)
  # The training split, placed as train.py places it: the step compiled is a training run's.
  train = data.load_split(config.data, "train", image_size=28, channels=1)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  train_fn = step_lib.make_train_fn(gan, config, mesh, num_examples=len(images))
  weights = population.weights(config)
  state, first = train_fn(jax.tree.map(jnp.copy, state), weights, images)
  after_one = jax.device_get(state)
  # Other weights are other values of the same program: no second trace, and they count.
  other, other_metrics = train_fn(jax.device_put(before, parallel.by_member(mesh)),
                                  {**weights, "d_contrastive": np.float32([0.0])}, images)
  state, metrics = train_fn(state, weights, images)
  assert len(traces) == 1, "another call retraced the step"
  assert not np.allclose(other["discriminator"]["params"]["conv1"]["kernel"],
                         after_one["discriminator"]["params"]["conv1"]["kernel"])
  # The same forward pass, weighted otherwise: D's loss lost its contrastive term.
  np.testing.assert_allclose(first["d_loss"] - other_metrics["d_loss"], first["d_contrastive"], rtol=1e-5)
  # D's loss is the weighted sum of its terms' losses, each logged under the term's name.
  np.testing.assert_allclose(first["d_loss"], first["d_adversarial"] + first["d_contrastive"], rtol=1e-6)
  assert after_one["step"].tolist() == [1] and state["step"].tolist() == [2]  # A population of one.
  for net in ("generator", "discriminator"):
    changed = jax.tree.map(lambda x, y: not np.array_equal(x, y), before[net]["params"], after_one[net]["params"])
    assert all(jax.tree.leaves(changed)), f"{net}: some parameters did not move"
  assert not np.array_equal(before["generator"]["batch_stats"]["project_bn"]["mean"],
                            after_one["generator"]["batch_stats"]["project_bn"]["mean"])
  assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "d_grad_norm", "g_grad_norm",
                          "d_param_norm", "g_param_norm", "d_adversarial", "g_adversarial", "d_contrastive",
                          "d_contrastive_acc"}
  assert all(np.isfinite(jax.device_get(v)).all() for v in metrics.values())


def test_n_dis_and_gradient_penalty_step():
  config = tiny_config(n_dis=2, augment="", **{"adversarial.loss": "wasserstein"})
  del config.contrastive
  config.gradient_penalty = base.block("gradient_penalty")
  _, state = initial_state(config)
  new_state, metrics = jit_step(config)(state, real_batches((2, 8, 28, 28, 1)))
  assert float(metrics["d_gradient_penalty"]) > 0
  # Two discriminator updates: Adam's count reached 2, the generator's 1.
  assert int(jax.tree.leaves(new_state["d_opt_state"])[0]) == 2
  assert int(jax.tree.leaves(new_state["g_opt_state"])[0]) == 1


def test_r1_rotation_and_contrastive_terms_report_and_train_their_heads():
  config = tiny_config("mnist_dcgan:rotation")
  config.r1 = base.block("r1")
  gan, state = initial_state(config)
  assert {"rotation", "projection"} <= set(state["discriminator"]["params"])
  new_state, metrics = jit_step(config, gan)(state, real_batches((1, 8, 28, 28, 1)))
  assert {"d_rotation", "d_rotation_acc", "g_rotation", "d_contrastive", "d_r1"} <= set(metrics)
  assert float(metrics["d_r1"]) > 0 and all(np.isfinite(float(v)) for v in metrics.values())
  for name in ("rotation", "projection"):
    head = lambda s: s["discriminator"]["params"][name]["kernel"]
    assert not np.allclose(head(state), head(new_state)), name


def test_the_step_makes_each_batch_from_its_own_stream():
  """The contrastive term's loss is NT-Xent on views 0 and 1 of the real batch, made by
  `step.VIEWS` from the streams of the D update's key named "view0" and "view1"."""
  config = tiny_config()
  gan, state = initial_state(config)
  real = real_batches((1, 8, 28, 28, 1), seed=1)
  _, metrics = jit_step(config, gan)(state, real)
  update_key = jax.random.split(jax.random.split(jax.random.fold_in(state["rng"], state["step"]))[0], 1)[0]
  project = lambda x: gan.discriminator.apply(state["discriminator"], x)[1]["projection"]
  views = [project(augment.diff_augment(state_lib.stream(update_key, f"view{i}"), real[0], step_lib.VIEWS))
           for i in (0, 1)]
  loss, _ = contrastive.nt_xent(*views, 0.2)
  np.testing.assert_allclose(metrics["d_contrastive"], loss, rtol=1e-4, atol=1e-5)
  swapped, _ = contrastive.nt_xent(views[0], project(real[0]), 0.2)
  assert abs(float(swapped) - float(loss)) > 1e-4  # The check above can tell other views apart.


def test_ema_follows_the_warmed_up_decay(config):
  gan, state = initial_state(config)
  new, _ = jit_step(config, gan)(state, real_batches((1, 8, 28, 28, 1)))
  # Step 0 uses decay min(0.999, 1/10): ema = 0.1 * old + 0.9 * new params.
  expected = jax.tree.map(lambda old, p: 0.1 * old + 0.9 * p, state["g_ema_params"], new["generator"]["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new["g_ema_params"], expected)


def test_discriminator_ema_follows_the_online_discriminator_by_its_decay():
  """d_ema_params after each step = decay x itself + (1 - decay) x D's params after the step,
  with decay min(d_ema_decay, (1 + t) / (10 + t)) at step t, as the generator's EMA; without
  `d_ema_decay` the state has none."""
  assert "d_ema_params" not in initial_state(tiny_config())[1]
  config = tiny_config(d_ema_decay=0.15)
  gan, state = initial_state(config)
  expected = jax.device_get(state["discriminator"]["params"])
  step = jit_step(config, gan)
  real = real_batches((3, 1, 8, 28, 28, 1))
  for t in range(3):
    state, _ = step(state, real[t])
    decay = min(config.d_ema_decay, (1 + t) / (10 + t))  # 0.1 (the warm-up), then 0.15 (the cap).
    expected = jax.tree.map(lambda e, d: decay * e + (1 - decay) * d, expected,
                            jax.device_get(state["discriminator"]["params"]))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
                 jax.device_get(state["d_ema_params"]), expected)
  # The EMA is not the online D (else the check above could not fail).
  assert not np.allclose(state["d_ema_params"]["logits"]["kernel"], state["discriminator"]["params"]["logits"]["kernel"])


def test_samples_come_from_the_ema_generator(config):
  gan, state = initial_state(config)
  sample = sampling.make_sample_fn(gan, seed=0, num_stat_samples=64)
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


def test_scan_and_unrolled_loops_agree():
  """The accelerator form (lax.scan) of `step.repeat`, which loops over steps_per_call and
  n_dis, equals the CPU form."""
  config = tiny_config()
  gan, state = initial_state(config)
  real = real_batches((2, 1, 8, 28, 28, 1))
  settings, weights = step_lib.step_settings(config), population.member_weights(config, population.Member(0))
  step = lambda s, r: step_lib.train_step(s, {"real": r}, weights, gan=gan, settings=settings)
  run = lambda unroll: jax.jit(lambda s, r: step_lib.repeat(step, s, r, 2, unroll=unroll))(state, real)
  (scanned, m_scanned), (unrolled, m_unrolled) = run(False), run(True)
  assert int(scanned["step"]) == 2 and m_scanned["d_loss"].shape == (2,)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5), scanned, unrolled)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5), m_scanned, m_unrolled)


def test_bfloat16_compute_keeps_float32_parameters():
  config = tiny_config(**{"model.dtype": "bfloat16"})
  gan, state = initial_state(config)
  _, features = gan.discriminator.apply(state["discriminator"], jnp.zeros((2, 28, 28, 1)))
  assert features["conv1"].dtype == jnp.bfloat16  # Computed in bfloat16 ...
  new, metrics = jit_step(config, gan)(state, real_batches((1, 8, 28, 28, 1)))
  dtypes = {x.dtype for x in jax.tree.leaves((new["generator"], new["discriminator"], new["g_opt_state"],
                                               new["d_opt_state"], new["g_ema_params"]))
            if jnp.issubdtype(x.dtype, jnp.floating)}
  assert dtypes == {jnp.dtype(jnp.float32)}  # ... stored and updated in float32.
  assert all(np.isfinite(float(v)) for v in metrics.values())
