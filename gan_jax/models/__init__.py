"""GAN architectures. Each module defines `Generator` and `Discriminator` linen modules.

Models are found by module path (`config.model.name` -> `gan_jax.models.<name>`), so a
new architecture is a new file here and nothing else to edit.
"""

import importlib
import pkgutil


# Modules here that are parts shared by the models, not models.
_PARTS = ("heads",)


def available() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _PARTS)


def get_model_module(name: str):
  """The module `gan_jax.models.<name>`; a clear error listing the choices otherwise."""
  if name not in available():
    raise ValueError(f"config.model.name={name!r} is not a model; allowed: {', '.join(available())}")
  return importlib.import_module(f"{__name__}.{name}")
