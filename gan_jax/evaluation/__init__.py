"""Evaluating what a GAN learned about images: features, clustering and linear probes."""
