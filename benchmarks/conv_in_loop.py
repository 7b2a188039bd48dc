"""Times the gradient of one 3x3 convolution outside and inside `lax.scan` (jax-ml/jax#12868).

  python benchmarks/conv_in_loop.py

On XLA:CPU the loop body runs convolutions far slower, which is why `step.repeat`
unrolls the `n_dis` and `steps_per_call` loops on CPU.
"""

import time

import flax.linen as nn
import jax


def seconds_per_call(fn, *args, repeats=5):
  jax.block_until_ready(fn(*args))  # Compile.
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / repeats


def main():
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 14, 14, 64))
  conv = nn.Conv(128, (3, 3))
  variables = conv.init(jax.random.PRNGKey(1), x)
  grad = jax.grad(lambda v, x: conv.apply(v, x).sum(), argnums=(0, 1))
  plain = seconds_per_call(jax.jit(grad), variables, x)
  looped = seconds_per_call(jax.jit(lambda v, x: jax.lax.scan(lambda c, _: (c, grad(v, x)), 0, length=1)[1]),
                            variables, x)
  print(f"device: {jax.devices()[0].device_kind}; conv3x3 64->128 on {x.shape}, forward+backward")
  print(f"plain: {plain * 1e3:.1f} ms; inside lax.scan (1 iteration): {looped * 1e3:.1f} ms; "
        f"ratio {looped / plain:.0f}x")


if __name__ == "__main__":
  main()
