"""Times forward+backward of the generator's 2x upsampling: Upsample2x vs nn.ConvTranspose.

  python benchmarks/upsample.py [--batch=64 --size=14 --in=128 --out=64 --repeats=10]

Both compute the same function (tests/test_models.py checks it); this prints the time
per call of the jit-compiled gradient with respect to parameters and input, and the ratio.
"""

import argparse
import time

import flax.linen as nn
import jax

from gan_jax.models.dcgan import Upsample2x


def time_grad(module, x, repeats):
  variables = module.init(jax.random.PRNGKey(1), x)
  grad = jax.jit(jax.grad(lambda v, x: (module.apply(v, x) ** 2).sum(), argnums=(0, 1)))
  jax.block_until_ready(grad(variables, x))  # Compile.
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(grad(variables, x))
  return (time.perf_counter() - start) / repeats


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--size", type=int, default=14)
  parser.add_argument("--in", dest="cin", type=int, default=128)
  parser.add_argument("--out", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, args.size, args.size, args.cin))
  subpixel = time_grad(Upsample2x(args.out), x, args.repeats)
  transposed = time_grad(nn.ConvTranspose(args.out, (4, 4), (2, 2), padding="SAME"), x, args.repeats)
  print(f"device: {jax.devices()[0].device_kind}; input {x.shape} -> {args.out} channels at 2x")
  print(f"Upsample2x (conv2x2 + depth-to-space): {subpixel * 1e3:.1f} ms per forward+backward")
  print(f"nn.ConvTranspose 4x4 stride 2:        {transposed * 1e3:.1f} ms per forward+backward")
  print(f"speed-up: {transposed / subpixel:.1f}x")


if __name__ == "__main__":
  main()
