"""Writes docs/configs.md's sections on the loss-term blocks and the evaluator blocks from their
declarations (`terms.docs_tables`, the evaluators' `Options`); tests/terms/test_registry.py
fails when a section is out of date.

  python tools/write_config_docs.py
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configs import base  # noqa: E402
from gan_jax import options  # noqa: E402
from gan_jax import terms  # noqa: E402
from gan_jax.evaluation import evaluators  # noqa: E402

PAGE = os.path.join(REPO, "docs", "configs.md")
# (first marker, last marker, what goes between them).
SECTIONS = {
    "terms": ("<!-- The term blocks below are written by tools/write_config_docs.py from gan_jax/terms/. -->\n",
              "<!-- End of the term blocks. -->\n"),
    "evals": ("<!-- The evaluator blocks below are written by tools/write_config_docs.py from gan_jax/evaluation/. -->\n",
              "<!-- End of the evaluator blocks. -->\n"),
}


def evals_tables() -> str:
  """A table per evaluator of configs/base.py's `config.evals`, from its module's `Options`."""
  sections = []
  for name in base.get_config().evals:
    declaration = evaluators.module(name).Options
    sections.append(f"### `evals.{name}`: `gan_jax/evaluation/{name}.py`\n\n{declaration.__doc__.strip()}\n\n"
                    + options.markdown(declaration, (f"evals.{name}",)))
  return "\n\n".join(sections) + "\n"


def generated() -> dict[str, str]:
  return {"terms": terms.docs_tables(), "evals": evals_tables()}


def section(page: str, name: str = "terms") -> str:
  """The text between section `name`'s markers in `page`."""
  begin, end = SECTIONS[name]
  return page.split(begin, 1)[1].split(end, 1)[0]


def main():
  with open(PAGE) as f:
    page = f.read()
  for name, text in generated().items():
    begin, end = SECTIONS[name]
    head, rest = page.split(begin, 1)
    page = head + begin + text + end + rest.split(end, 1)[1]
  with open(PAGE, "w") as f:
    f.write(page)


if __name__ == "__main__":
  main()
