"""Times the parts of the standard CNN GAN step in JAX and in PyTorch, to see where one loses.

  python benchmarks/step_parts.py     # needs the [bench] extra

D forward and parameter gradient on 128 images (real + fake, as in the D update), G
forward and parameter gradient (BatchNorm in training mode) on 64 latents; PyTorch in
NCHW and in channels_last. Milliseconds per call, mean of 5 after a warm-up call.
"""

import os
import sys
import time

import jax
import jax.numpy as jnp
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gan_jax.models import dcgan  # noqa: E402
import torch_gan  # noqa: E402


def ms(fn, *args, repeats=5):
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / repeats * 1e3


def main():
  d = dcgan.Discriminator(image_size=32, base_features=64, stride1_convs=True)
  g = dcgan.Generator(image_size=32, channels=3, base_features=64)
  x, z = jnp.ones((128, 32, 32, 3)), jnp.ones((64, 128))
  dv, gv = d.init(jax.random.PRNGKey(0), x), g.init(jax.random.PRNGKey(0), z, train=False)
  g_out = lambda p, z: g.apply({**gv, "params": p}, z, train=True, mutable=["batch_stats"])[0].sum()
  jax_times = [ms(jax.jit(lambda v, x: d.apply(v, x)[0].sum()), dv, x),
               ms(jax.jit(jax.grad(lambda v, x: d.apply(v, x)[0].sum())), dv, x),
               ms(jax.jit(g_out), gv["params"], z), ms(jax.jit(jax.grad(g_out)), gv["params"], z)]
  rows = [(f"JAX {jax.__version__} ({jax.devices()[0].device_kind})", jax_times)]
  for channels_last in (False, True):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    td, tg = torch_gan.Discriminator().to(memory_format=fmt), torch_gan.Generator().to(memory_format=fmt)
    tx, tz = torch.ones(128, 3, 32, 32).contiguous(memory_format=fmt), torch.ones(64, 128)

    def run(net, inp, grad):
      def call():
        if grad:
          net.zero_grad()
          net(inp).sum().backward()
        else:
          with torch.no_grad():
            net(inp).sum()
      return call
    rows.append((f"PyTorch {torch.__version__}{' channels_last' if channels_last else ''}",
                 [ms(run(td, tx, False)), ms(run(td, tx, True)), ms(run(tg, tz, False)), ms(run(tg, tz, True))]))
  print(f"{'':40s} {'D fwd 128':>10s} {'D grad 128':>11s} {'G fwd 64':>9s} {'G grad 64':>10s}  (ms)")
  for name, t in rows:
    print(f"{name:40s} {t[0]:10.0f} {t[1]:11.0f} {t[2]:9.0f} {t[3]:10.0f}")


if __name__ == "__main__":
  main()
