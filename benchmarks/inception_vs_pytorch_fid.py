r"""`gan_jax.evaluation.inception` against pytorch-fid's FID Inception on the same weights.

Two halves, because pytorch-fid needs PyTorch + torchvision and the other half the project:

  # 1. In a PyTorch environment (needs no JAX), e.g.
  #    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch torchvision pytorch-fid numpy
  /tmp/torchvenv/bin/python benchmarks/inception_vs_pytorch_fid.py torch /tmp/inception_check
  # 2. In the project's environment:
  .venv/bin/python benchmarks/inception_vs_pytorch_fid.py jax /tmp/inception_check

Half 1 builds pytorch-fid's `fid_inception_v3()` with its weight download replaced by the
freshly initialised model's own state dict, then randomises every BatchNorm (weights and
biases; running statistics measured on random inputs, so that 94 layers of random weights
neither die nor explode, then perturbed) and the fc bias, and writes to OUT_DIR:
  weights.npz     the state dict in `inception.WEIGHTS_FORMAT`;
  reference.npz   4 random inputs in [-1, 1] (4 x 3 x 299 x 299; 2 pixel noise, 2 smooth),
                  their `pool3` (the output of `avgpool`, 4 x 2048) and `logits` (`fc`,
                  4 x 1008), in float32 and (the same weights) in float64; and uint8
                  images with pytorch-fid's resize of them (`F.interpolate` bilinear,
                  align_corners=False, on ToTensor's [0, 1], then 2x - 1) up from 32 px
                  and down from 400 x 512 px.
Half 2 loads weights.npz with `inception.load_weights`, runs `InceptionV3` on the same
inputs (NHWC) in float32 and in float64 (where only an identical architecture leaves
differences at rounding level, ~1e-12), and `preprocess(..., "bilinear")` on the same
images, and prints the largest absolute difference and that difference relative to the
largest |reference|. Both halves run on CPU, in well under a minute each on 2 cores.
"""

from __future__ import annotations

import os
import sys

import numpy as np

NUM_INPUTS = 4


def _import_pytorch_fid():
  """pytorch_fid.inception, tolerating a torchvision wheel whose compiled ops do not load.

  A CUDA build of torchvision beside a CPU build of torch fails at import while registering
  its operators (`operator torchvision::nms does not exist`); the Inception model uses none
  of them, so the import is retried with that registration made a no-op.
  """
  import torch
  try:
    import torchvision  # noqa: F401
  except RuntimeError:
    for name in [n for n in sys.modules if n.startswith("torchvision")]:
      del sys.modules[name]
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
      import torchvision  # noqa: F401
    finally:
      torch.library.register_fake = register_fake
  from pytorch_fid import inception as pytorch_fid_inception
  return pytorch_fid_inception


def _random_inputs(n: int):
  """`n x 3 x 299 x 299` in [-1, 1]: half pixel noise, half smooth (8 x 8 noise upsampled)."""
  import torch
  import torch.nn.functional as F
  noise = torch.rand(n - n // 2, 3, 299, 299)
  smooth = F.interpolate(torch.rand(n // 2, 3, 8, 8), size=(299, 299), mode="bilinear", align_corners=False)
  return torch.cat([noise, smooth]) * 2 - 1


def torch_half(out_dir: str) -> None:
  import torch
  import torch.nn.functional as F
  pfi = _import_pytorch_fid()
  torch.manual_seed(0)

  built = {}
  make = pfi._inception_v3
  pfi._inception_v3 = lambda *a, **k: built.setdefault("model", make(*a, **k))
  # fid_inception_v3 swaps in the FID blocks before it loads the downloaded state dict, so
  # the model's own state dict at that point has exactly the file's keys and shapes.
  pfi.load_state_dict_from_url = lambda *a, **k: built["model"].state_dict()
  model = pfi.fid_inception_v3()
  assert model is built["model"]

  with torch.no_grad():
    # Random BatchNorm affine parameters, then running statistics of the data the layers
    # actually see (so that 94 layers of random weights keep activations O(1)), perturbed
    # a little: a swapped or mis-transposed statistic then shows in the outputs.
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in batch_norms:
      bn.weight.copy_(torch.empty(bn.num_features).uniform_(0.5, 1.5))
      bn.bias.copy_(torch.randn(bn.num_features) * 0.2)
      bn.momentum = None  # A cumulative average over the calibration batches.
    model.train()
    for _ in range(2):
      model(_random_inputs(8))
    model.eval()
    for bn in batch_norms:
      bn.running_mean.add_(torch.randn(bn.num_features) * 0.05 * bn.running_var.sqrt())
      bn.running_var.mul_(torch.empty(bn.num_features).uniform_(0.9, 1.1))
    model.fc.bias.copy_(torch.randn(1008) * 0.1)

    pool3 = {}
    model.avgpool.register_forward_hook(lambda module, inputs, output: pool3.setdefault("x", output))
    inputs = _random_inputs(NUM_INPUTS)
    logits = model(inputs)
    # float64 too: there, any architectural slip stands far above rounding (~1e-12).
    pool3_f32 = pool3.pop("x")
    logits_f64 = model.double()(inputs.double())
    pool3_f64 = pool3.pop("x")
    model.float()

    small = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    large = torch.randint(0, 256, (2, 400, 512, 3), dtype=torch.uint8)
    resized = [F.interpolate(images.permute(0, 3, 1, 2).float() / 255, size=(299, 299), mode="bilinear",
                             align_corners=False) * 2 - 1 for images in (small, large)]

  os.makedirs(out_dir, exist_ok=True)
  state = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()
           if not k.endswith("num_batches_tracked")}
  np.savez(os.path.join(out_dir, "weights.npz"), **state)
  np.savez(os.path.join(out_dir, "reference.npz"), inputs_BxCxHxW=inputs.numpy(),
           pool3=pool3_f32.flatten(1).numpy(), logits=logits.numpy(),
           pool3_f64=pool3_f64.flatten(1).numpy(), logits_f64=logits_f64.numpy(),
           small_u8=small.numpy(), small_resized_BxCxHxW=resized[0].numpy(),
           large_u8=large.numpy(), large_resized_BxCxHxW=resized[1].numpy())
  print(f"torch {torch.__version__}: wrote {len(state)} tensors, "
        f"{sum(v.size for k, v in state.items() if 'running' not in k):,} parameters, to {out_dir}")


def _report(name: str, ours: np.ndarray, reference: np.ndarray) -> None:
  diff = np.abs(np.asarray(ours, np.float64) - reference)
  scale = np.abs(reference).max()
  print(f"{name:>18}: max |ref| {scale:10.4g}  max abs diff {diff.max():.3g}  "
        f"relative to max |ref| {diff.max() / scale:.3g}  mean abs diff {diff.mean():.3g}")


def jax_half(out_dir: str) -> None:
  import jax
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from gan_jax.evaluation import inception

  variables = inception.load_weights(os.path.join(out_dir, "weights.npz"))
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}: "
        f"{inception.param_count(variables):,} parameters")
  with np.load(os.path.join(out_dir, "reference.npz")) as f:
    ref = dict(f)
  x_BxHxWx3 = ref["inputs_BxCxHxW"].transpose(0, 2, 3, 1)
  pool3, logits = jax.jit(inception.InceptionV3().apply)(variables, x_BxHxWx3)
  _report("pool3", pool3, ref["pool3"])
  _report("logits", logits, ref["logits"])
  for size in ("small", "large"):
    ours = inception.preprocess(ref[f"{size}_u8"], "bilinear")
    _report(f"bilinear {ref[f'{size}_u8'].shape[1]}x{ref[f'{size}_u8'].shape[2]}", ours,
            ref[f"{size}_resized_BxCxHxW"].transpose(0, 2, 3, 1))
  # Last: with x64 on, jax.image.resize computes its weights in float64 (differences ~5e-5
  # from torch's float32 source coordinates instead of ~4e-7).
  jax.config.update("jax_enable_x64", True)
  variables_f64 = jax.tree.map(lambda v: np.asarray(v, np.float64), variables)
  pool3, logits = jax.jit(inception.InceptionV3().apply)(variables_f64, x_BxHxWx3.astype(np.float64))
  assert pool3.dtype == np.float64, pool3.dtype
  _report("pool3 float64", pool3, ref["pool3_f64"])
  _report("logits float64", logits, ref["logits_f64"])


if __name__ == "__main__":
  if len(sys.argv) != 3 or sys.argv[1] not in ("torch", "jax"):
    sys.exit(__doc__)
  {"torch": torch_half, "jax": jax_half}[sys.argv[1]](sys.argv[2])
