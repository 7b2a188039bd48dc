"""gan_jax: train GANs in JAX and use them to classify and cluster images.

Modules: `data` (datasets and step-indexed batches), `models` (linen generators and
discriminators), `losses`, `training` (train state, jit'd step, `train_and_evaluate`),
`checkpoints` (Orbax), `parallel` (mesh and shardings), `visualize` (image grids).
"""
