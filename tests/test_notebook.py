"""notebooks/quickstart.ipynb runs end to end (a tiny model, 4 steps) in a fresh kernel,
and the API it uses is the package's."""

import os
import re

import nbclient
import nbformat

from conftest import REPO

NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")


def test_quickstart_notebook_executes_and_reports_every_evaluator(tmp_path, monkeypatch):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  # The repository keeps it without outputs, so that a diff shows code only.
  assert all(not cell.get("outputs") and not cell.get("execution_count")
             for cell in notebook.cells if cell.cell_type == "code")
  monkeypatch.setenv("QUICKSTART_STEPS", "4")
  monkeypatch.setenv("QUICKSTART_TINY", "1")
  monkeypatch.setenv("QUICKSTART_WORKDIR", str(tmp_path / "run"))
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()

  text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream")
  assert "trained to step 4" in text
  rows = re.findall(r"(trained D|random D \(control\)): k-means ACC ([\d.]+) NMI [\d.]+ ARI -?[\d.]+ \| "
                    r"linear probe ([\d.]+) \| 20-NN ([\d.]+)", text)
  assert [r[0] for r in rows] == ["trained D", "random D (control)"], text
  for _, acc, probe, knn in rows:  # Real digits: even 4 steps of a tiny D are far above chance (0.1).
    assert 0.2 < float(acc) <= 1 and 0.5 < float(probe) <= 1 and 0.5 < float(knn) <= 1
  images = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if output.output_type == "display_data" and "image/png" in output.get("data", {})]
  assert len(images) == 2  # The sample grid and the contingency matrix.
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "4")
