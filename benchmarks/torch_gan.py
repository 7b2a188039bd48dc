"""The same GAN training step in PyTorch, for `train_throughput.py --torch` to compare against.

  python benchmarks/torch_gan.py [--batch_size=64] [--channels_last]

The SNGAN paper's "standard CNN" at 32 pixels, exactly as `gan_jax.models.dcgan` builds it
for `configs/cifar10_dcgan.py`, and the same work per step as `step.train_step`:
  - `n_dis` discriminator updates, each on a real batch gathered from an in-memory uint8
    dataset and a fresh generated batch (generator in training mode, no gradient), real
    and fake through D in one pass; non-saturating loss; Adam(2e-4, 0.5, 0.999);
  - one generator update on a fresh latent batch through the updated D;
  - the EMA of the generator's weights (decay 0.999).
PyTorch is a benchmark-only dependency (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


def _init(module: nn.Module) -> None:
  """The DCGAN initialisation the JAX models use: N(0, 0.02) weights, zero biases."""
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


class Generator(nn.Module):
  """z(128) -> dense 4x4x512 -> [deconv4x4 s2, BN, ReLU] x 256/128/64 -> conv3x3 -> tanh."""

  def __init__(self, latent_dim: int = 128, base_features: int = 64, channels: int = 3):
    super().__init__()
    width = base_features * 8
    self.width = width
    self.project = nn.Linear(latent_dim, 4 * 4 * width)
    self.project_bn = nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)  # torch momentum = 1 - flax's 0.9.
    ups = []
    for _ in range(3):
      ups += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU()]
      width //= 2
    self.ups = nn.Sequential(*ups)
    self.to_image = nn.Conv2d(width, channels, 3, 1, 1)

  def forward(self, z):
    x = self.project(z).view(-1, self.width, 4, 4)
    x = F.relu(self.project_bn(x))
    return torch.tanh(self.to_image(self.ups(x)))


class Discriminator(nn.Module):
  """conv3x3 64, conv4x4 s2 64, conv3x3 128, conv4x4 s2 128, conv3x3 256, conv4x4 s2 256,
  conv3x3 512, LeakyReLU(0.1) after each, dense 1 ('SAME' padding as in the JAX model)."""

  def __init__(self, base_features: int = 64, channels: int = 3):
    super().__init__()
    layers, c_in = [], channels
    for stage in range(3):
      width = base_features * 2**stage
      layers += [nn.Conv2d(c_in, width, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.1)]
      c_in = width
    layers += [nn.Conv2d(c_in, 2 * c_in, 3, 1, 1), nn.LeakyReLU(0.1)]
    self.convs = nn.Sequential(*layers)
    self.logits = nn.Linear(2 * c_in * 4 * 4, 1)

  def forward(self, x):
    return self.logits(self.convs(x).flatten(1))[:, 0]


class TorchGAN:
  """Models, optimizers and the training step; `step()` does one generator step of work."""

  def __init__(self, batch_size: int = 64, n_dis: int = 1, num_examples: int = 50_000,
               channels_last: bool = False, compile: str = "", seed: int = 0, device: str = "cpu"):
    torch.manual_seed(seed)
    self.batch_size, self.n_dis, self.latent_dim, self.device = batch_size, n_dis, 128, device
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.g = Generator().apply(_init).to(device, memory_format=self.memory_format)
    self.d = Discriminator().apply(_init).to(device, memory_format=self.memory_format)
    self.g_ema = copy.deepcopy(self.g).requires_grad_(False)
    if compile:  # torch.compile (Inductor) of both networks in this mode; the optimizers stay eager.
      self.g, self.d = torch.compile(self.g, mode=compile), torch.compile(self.d, mode=compile)
    fused = device != "cpu"  # Adam's one-kernel form, CUDA only.
    self.g_opt = torch.optim.Adam(self.g.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused)
    self.d_opt = torch.optim.Adam(self.d.parameters(), 2e-4, betas=(0.5, 0.999), fused=fused)
    self.images_u8 = torch.randint(0, 256, (num_examples, 3, 32, 32), dtype=torch.uint8, device=device)
    self.permutation, self.position = torch.randperm(num_examples, device=device), 0

  def _real_batch(self):
    if self.position + self.batch_size > len(self.permutation):
      self.permutation, self.position = torch.randperm(len(self.permutation), device=self.device), 0
    idx = self.permutation[self.position:self.position + self.batch_size]
    self.position += self.batch_size
    real = self.images_u8[idx].float() / 127.5 - 1.0
    return real.contiguous(memory_format=self.memory_format)

  def step(self) -> None:
    b = self.batch_size
    for _ in range(self.n_dis):
      real = self._real_batch()
      with torch.no_grad():
        fake = self.g(torch.randn(b, self.latent_dim, device=self.device))
      logits = self.d(torch.cat([real, fake]))
      d_loss = F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()
      self.d_opt.zero_grad(set_to_none=True)
      d_loss.backward()
      self.d_opt.step()
    fake = self.g(torch.randn(b, self.latent_dim, device=self.device))
    g_loss = F.softplus(-self.d(fake)).mean()
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(list(self.g_ema.parameters()), list(self.g.parameters()), 1.0 - 0.999)


def default_device() -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def measure(batch_size: int = 64, n_dis: int = 1, channels_last: bool = False, compile: str = "",
            windows: int = 5, window_steps: int = 10, warmup_steps: int = 3, device: str | None = None,
            ) -> dict[str, float]:
  """Steady-state steps/s and images/s (real images per second): median over timed windows.

  `compile` is a torch.compile mode ("default", "reduce-overhead", ...) or "" for eager.
  On CUDA, float32 convolutions and matmuls run as TF32, as JAX runs them by default.
  """
  device = device or default_device()
  if device != "cpu":
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
  sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
  gan = TorchGAN(batch_size, n_dis, channels_last=channels_last, compile=compile, device=device)
  for _ in range(warmup_steps):
    gan.step()
  sync()
  seconds = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(window_steps):
      gan.step()
    sync()
    seconds.append((time.perf_counter() - start) / window_steps)
  steps_per_sec = 1.0 / statistics.median(seconds)
  return {"steps_per_sec": steps_per_sec, "images_per_sec": steps_per_sec * batch_size * n_dis,
          "threads": torch.get_num_threads(), "device": device}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--n_dis", type=int, default=1)
  parser.add_argument("--channels_last", action="store_true")
  parser.add_argument("--compile", default="", help="torch.compile mode for both networks (default, "
                      "reduce-overhead, ...); empty for eager")
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--window_steps", type=int, default=10)
  args = parser.parse_args()
  r = measure(args.batch_size, args.n_dis, args.channels_last, args.compile, args.windows, args.window_steps)
  print(f"PyTorch {torch.__version__} ({r['threads']} threads), standard CNN GAN 32px, batch {args.batch_size}, "
        f"n_dis {args.n_dis}, {r['device']}{', channels_last' if args.channels_last else ''}"
        f"{', torch.compile ' + args.compile if args.compile else ''}: "
        f"{r['steps_per_sec']:.2f} steps/s, {r['images_per_sec']:.1f} images/s")


if __name__ == "__main__":
  main()
