r"""Training throughput of a config's GAN step: compile time, steps/s, images/s, FLOPs.

  # The standard CNN GAN (32 px, batch 64, n_dis 1), single and fused steps:
  python benchmarks/train_throughput.py --steps_per_call=1,4
  # Beside the same step in PyTorch (benchmarks/torch_gan.py; needs the [bench] extra),
  # eager, channels_last, and with --torch_compile also torch.compile:
  python benchmarks/train_throughput.py --torch --torch_compile
  # Any config and override; bfloat16 compute on an accelerator:
  python benchmarks/train_throughput.py --config=configs/mnist_dcgan.py --config.model.dtype=bfloat16
  # The sharded program on 1, 2, 4, 8 fake CPU devices (one subprocess each):
  python benchmarks/train_throughput.py --fake_cpu_devices=1,2,4,8

It times `step.make_train_fn`, the exact function `train.py` runs, on a synthetic
uint8 dataset resident on the devices (the data pipeline of training, without the disk).
Steps/s is the median over `--windows` timed windows after a warm-up call, each window
ending in `block_until_ready`. FLOPs per step come from XLA's cost analysis of the lowered
single-step program on the CPU backend (in a subprocess on accelerators); on a known
accelerator the achieved FLOP/s is also given as a fraction of its peak.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file("config", "configs/cifar10_dcgan.py", "Training config.")
_BATCH_SIZES = flags.DEFINE_list("batch_size", None, "Global batch sizes to time (default: the config's).")
_STEPS_PER_CALL = flags.DEFINE_list("steps_per_call", None, "Fused steps per call (default: the config's).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 50_000, "Size of the synthetic dataset.")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Timed windows; steps/s is their median.")
_WINDOW_STEPS = flags.DEFINE_integer("window_steps", 16, "Training steps per window (rounded up to whole calls).")
_TORCH = flags.DEFINE_bool("torch", False, "Also time benchmarks/torch_gan.py (standard CNN only) and print the ratio.")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", False, "With --torch: also time PyTorch under torch.compile.")
_FLOPS_ONLY = flags.DEFINE_bool("flops_only", False, "Only print FLOPs per step (how a GPU run gets them).")
_FAKE_CPU_DEVICES = flags.DEFINE_list("fake_cpu_devices", None,
                                      "Re-run on these numbers of fake CPU devices, one subprocess each.")

# Dense peak FLOP/s by device kind, for the fraction of peak: (float32 as XLA runs it, bfloat16).
# NVIDIA GPUs run float32 convolutions and matmuls as TF32 under JAX's default precision.
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": (494e12, 989e12),
    "NVIDIA H200": (494e12, 989e12),
    "NVIDIA A100-SXM4-80GB": (156e12, 312e12),
    "NVIDIA A100-SXM4-40GB": (156e12, 312e12),
    "TPU v4": (275e12, 275e12),
    "TPU v5 lite": (197e12, 197e12),
    "TPU v5p": (459e12, 459e12),
    "TPU v6 lite": (918e12, 918e12),
}


def _program(config, num_examples: int):
  """`(train_fn, state, data)`: the compiled-to-be training call and its inputs, `train_fn(state, *data)`:
  the terms' weights, the synthetic training set, and with `config.kplus1` a synthetic labelled
  subset and its labels (replicated, as train.py passes them)."""
  import jax
  import numpy as np
  from gan_jax import parallel, population, state as state_lib, step as step_lib

  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  gan = state_lib.make_gan(config)
  num_examples -= num_examples % jax.device_count()
  # The size matters to the state: configs that mine neighbours keep a table of them.
  state = jax.jit(lambda: population.init_state(gan, config, num_examples), out_shardings=parallel.by_member(mesh))()
  images = np.random.default_rng(0).integers(0, 256, (num_examples, config.image_size, config.image_size,
                                                       config.channels), dtype=np.uint8)
  images = parallel.host_to_global(images, parallel.batch_sharded(mesh))  # Split over the devices, as in train.py.
  inputs = (population.weights(config), images)
  if "kplus1" in config:
    num_labelled = config.kplus1.labels_per_class * config.kplus1.num_classes
    labelled = np.random.default_rng(1).integers(0, 256, (num_labelled, *images.shape[1:]), dtype=np.uint8)
    labels = np.arange(num_labelled, dtype=np.int32) % config.kplus1.num_classes
    inputs += tuple(jax.device_put(x[None], parallel.by_member(mesh)) for x in (labelled, labels))
  return step_lib.make_train_fn(gan, config, mesh, num_examples), state, inputs


def _contrastive_weight(config) -> float:
  """The weight of D's contrastive term; 0 where its block is absent."""
  return float(config.contrastive.weight) if "contrastive" in config else 0.0


def _with_batch(config, batch_size: int):
  config = config.copy_and_resolve_references()
  config.batch_size = batch_size
  return config


def step_flops(config, num_examples: int) -> float:
  """FLOPs of one training step: XLA's cost analysis of the single-step program as lowered
  for this CPU. (A compiled GPU program's count misses cuDNN's convolutions, which are
  custom calls, and counts a scan's body once; the GPU client analyses no lowered one.)"""
  config = config.copy_and_resolve_references()
  config.steps_per_call = 1
  train_fn, state, inputs = _program(config, num_examples)
  return float((train_fn.lower(state, *inputs).cost_analysis() or {}).get("flops", float("nan")))


def _flops_from_cpu(batch_sizes: list[int]) -> dict[int, float]:
  """`step_flops` for each batch size, from this script re-run on the CPU backend."""
  argv = [a for a in sys.argv if not a.startswith(("--fake_cpu_devices", "--torch", "--notorch"))]
  run = subprocess.run([sys.executable, *argv, "--flops_only"], env={**os.environ, "JAX_PLATFORMS": "cpu"},
                       capture_output=True, text=True)
  if run.returncode:
    sys.exit(f"counting FLOPs on the CPU backend failed:\n{run.stderr[-2000:]}")
  out = run.stdout
  return {int(b): float(f) for line in out.splitlines() if line.startswith("FLOPS ") for b, f in [line.split()[1:]]}


def measure(config, num_examples: int, windows: int, window_steps: int, flops_per_step: float) -> dict[str, float]:
  """Times `config.steps_per_call` fused steps of `config`'s GAN on every device."""
  import jax

  train_fn, state, inputs = _program(config, num_examples)
  start = time.perf_counter()
  compiled = train_fn.lower(state, *inputs).compile()
  compile_seconds = time.perf_counter() - start
  # What one device runs, after partitioning: on CPU the compiled count is complete (no
  # custom calls, fused steps unrolled); it shows the step split over the devices.
  device_flops = float("nan")
  if jax.default_backend() == "cpu":
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    device_flops = float(cost.get("flops", float("nan"))) / config.steps_per_call

  state, _ = compiled(state, *inputs)  # Warm-up.
  jax.block_until_ready(state)
  calls = -(-window_steps // config.steps_per_call)
  seconds = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(calls):
      state, metrics = compiled(state, *inputs)
    jax.block_until_ready((state, metrics))
    seconds.append((time.perf_counter() - start) / (calls * config.steps_per_call))
  steps_per_sec = 1.0 / statistics.median(seconds)
  result = {"compile_seconds": compile_seconds, "steps_per_sec": steps_per_sec,
            "images_per_sec": steps_per_sec * config.batch_size * config.n_dis,
            "flops_per_step": flops_per_step, "flops_per_sec": flops_per_step * steps_per_sec,
            "device_flops_per_step": device_flops}
  peak = PEAK_FLOPS.get(jax.devices()[0].device_kind)
  if peak:
    total_peak = peak[config.model.dtype == "bfloat16"] * jax.device_count()
    result["fraction_of_peak"] = result["flops_per_sec"] / total_peak
  return result


def _fake_device_runs(counts: list[str]) -> None:
  """Re-executes this script once per device count; XLA reads the count at start-up only."""
  argv = [a for a in sys.argv if not a.startswith(("--fake_cpu_devices", "--torch", "--notorch"))]
  for n in counts:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}"}
    subprocess.run([sys.executable, *argv], env=env, check=True)


def main(argv):
  del argv
  if _FAKE_CPU_DEVICES.value:
    _fake_device_runs(_FAKE_CPU_DEVICES.value)
    return
  import jax
  from gan_jax import loop

  base = _CONFIG.value
  loop.validate_config(base)
  batch_sizes = [int(b) for b in _BATCH_SIZES.value or [base.batch_size]]
  if _FLOPS_ONLY.value:
    for batch_size in batch_sizes:
      print(f"FLOPS {batch_size} {step_flops(_with_batch(base, batch_size), _NUM_EXAMPLES.value)}")
    return
  # Once per batch size: the count does not depend on steps_per_call. Only the CPU
  # lowering's count is right, so accelerators get it from a CPU subprocess.
  if jax.default_backend() == "cpu":
    flops = {b: step_flops(_with_batch(base, b), _NUM_EXAMPLES.value) for b in batch_sizes}
  else:
    flops = _flops_from_cpu(batch_sizes)
  fused = [int(k) for k in _STEPS_PER_CALL.value or [base.steps_per_call]]
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})"
  print(f"JAX {jax.__version__} on {device}; model {base.model.name} {base.image_size}px, "
        f"stride1_convs={base.model.discriminator_stride1_convs}, dtype {base.model.dtype}, n_dis {base.n_dis}, "
        f"augment {base.get('augment', '') or 'none'}, contrastive weight {_contrastive_weight(base)}")
  rows = {}
  for batch_size in batch_sizes:
    for k in fused:
      config = base.copy_and_resolve_references()
      config.batch_size, config.steps_per_call = batch_size, k
      r = measure(config, _NUM_EXAMPLES.value, _WINDOWS.value, _WINDOW_STEPS.value,
                  flops.get(batch_size, float("nan")))
      rows[batch_size, k] = r
      peak = f", {100 * r['fraction_of_peak']:.1f}% of peak" if "fraction_of_peak" in r else ""
      if jax.device_count() > 1 and r["device_flops_per_step"] == r["device_flops_per_step"]:
        peak += f", {r['device_flops_per_step'] / 1e9:.2f} GFLOP/step on each device"
      print(f"batch {batch_size:4d}, steps_per_call {k:3d}: compile {r['compile_seconds']:.1f} s, "
            f"{r['steps_per_sec']:.2f} steps/s, {r['images_per_sec']:.1f} images/s, "
            f"{r['flops_per_step'] / 1e9:.2f} GFLOP/step, {r['flops_per_sec'] / 1e9:.1f} GFLOP/s{peak}", flush=True)
    if len(fused) > 1:
      one = rows[batch_size, fused[0]]["steps_per_sec"]
      print("  fused speed-up over steps_per_call=%d: %s" % (fused[0], ", ".join(
          f"{k}: {rows[batch_size, k]['steps_per_sec'] / one:.2f}x" for k in fused[1:])))

  if _TORCH.value:
    import torch_gan
    if not (base.image_size == 32 and base.model.discriminator_stride1_convs and base.n_dis == 1
            and base.model.generator_features == 64 and base.model.discriminator_features == 64
            and base.model.latent_dim == 128 and not base.get("augment") and not _contrastive_weight(base)
            and base.model.dtype == "float32"):
      sys.exit("--torch compares the float32 standard CNN GAN only: use --config=configs/cifar10_dcgan.py")
    for batch_size in batch_sizes:
      best = max(rows[batch_size, k]["images_per_sec"] for k in fused)
      # Eager, eager channels_last, and torch.compile.
      variants = [("", False), ("", True)]
      if _TORCH_COMPILE.value:
        variants += [("default", True)]
      for compile, channels_last in variants:
        name = f"{', channels_last' if channels_last else ''}{', torch.compile ' + compile if compile else ''}"
        try:
          t = torch_gan.measure(batch_size, channels_last=channels_last, compile=compile, windows=_WINDOWS.value,
                                window_steps=_WINDOW_STEPS.value)
        except Exception as e:  # A failing variant (say, CUDA graphs) must not hide the others.
          print(f"PyTorch batch {batch_size}{name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
          continue
        print(f"PyTorch {torch_gan.torch.__version__} ({t['device']}, {t['threads']} threads), batch {batch_size}"
              f"{name}: {t['steps_per_sec']:.2f} steps/s, "
              f"{t['images_per_sec']:.1f} images/s; JAX / PyTorch = {best / t['images_per_sec']:.2f}", flush=True)

if __name__ == "__main__":
  app.run(main)
