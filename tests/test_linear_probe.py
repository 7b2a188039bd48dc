import numpy as np
from sklearn import linear_model

from gan_jax import data
from gan_jax.evaluation import linear_probe


def test_linear_probe_matches_scikit_learn_logistic_regression():
  train_images, train_y = data.mnist_5k("train")
  test_images, test_y = data.mnist_5k("test")
  train_x = train_images.reshape(len(train_images), -1).astype(np.float32) / 255.0
  test_x = test_images.reshape(len(test_images), -1).astype(np.float32) / 255.0
  result = linear_probe.fit_linear_probe(train_x, train_y, test_x, test_y, l2_grid=(1e-3, 1e-2, 1e-1))
  assert result.l2 in (1e-3, 1e-2, 1e-1) and set(result.validation_accuracy) == {1e-3, 1e-2, 1e-1}
  assert result.per_class_accuracy.shape == (10,) and result.weights.shape == (784, 10)

  # The same objective in scikit-learn: standardised features, C = 1 / (l2 * N).
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  reference = linear_model.LogisticRegression(C=1.0 / (result.l2 * len(train_x)), max_iter=2000)
  reference.fit((train_x - mean) / std, train_y)
  reference_accuracy = reference.score((test_x - mean) / std, test_y)
  assert abs(result.test_accuracy - reference_accuracy) <= 0.01
  assert result.test_accuracy > 0.85  # Raw MNIST pixels are linearly separable to about 0.9.
  np.testing.assert_allclose(np.nanmean(result.per_class_accuracy), result.test_accuracy, atol=0.01)
