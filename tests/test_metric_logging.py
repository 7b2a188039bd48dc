"""Training scalars reach TensorBoard: the event files gan_jax writes without TensorFlow read back
with TensorBoard's own reader."""

import itertools

from tensorboard.backend.event_processing import event_accumulator

from gan_jax import metric_logging


def test_scalars_read_back_with_tensorboard_and_each_writer_gets_its_own_file(tmp_path, monkeypatch):
  # The process's 10th and 11th files: TensorBoard reads a folder's files in the order of their names.
  monkeypatch.setattr(metric_logging.EventFile, "_made", itertools.count(9))
  for steps in ((1, 2), (3,)):  # Two writers on one folder, as a run and its resumption in one process.
    writer = metric_logging.MetricWriter(str(tmp_path), total_steps=3, initial_step=steps[0] - 1, progress=False)
    for step in steps:
      writer.write_scalars(step, {"d_loss": 0.5 * step, "representation/raw_pixels/kmeans_acc": 0.25})
    writer.close()
  assert len(list((tmp_path / "tensorboard").iterdir())) == 2
  accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  accumulator.Reload()
  assert sorted(accumulator.Tags()["scalars"]) == ["d_loss", "representation/raw_pixels/kmeans_acc"]
  assert [(e.step, e.value) for e in accumulator.Scalars("d_loss")] == [(1, 0.5), (2, 1.0), (3, 1.5)]
