"""Bytes on the wire per round: model broadcast to hospitals, updates uploaded from them.

Counted from the tensors TFF moves: the broadcast is the model's weights
(trainable and not), the upload one update per trainable variable plus its
float32 weight. With `algorithm.aggregator='compression'` (TFF's
`compression_aggregator`: 8-bit uniform quantization of every tensor of more
than 20000 elements) each update tensor is encoded with the same tensor-encoding
stages TFF uses and the encoded tensors' bytes are counted. With
`algorithm.aggregator='secure'` (`learning.secure`) each value leaves masked as
an int64, with the float32 weight and an int32 count of clipped coordinates.
Metrics and gRPC framing are not counted. TFF reports no byte counts itself; this is ours.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from tensorflow_model_optimization.python.core.internal import tensor_encoding as te

# The settings `tff.learning.compression_aggregator` hard-codes.
QUANTIZATION_BITS = 8
QUANTIZATION_THRESHOLD = 20000
BROADCAST_BYTES = 'comm/broadcast_bytes'
UPLOAD_BYTES = 'comm/upload_bytes'
UPLOAD_BYTES_UNCOMPRESSED = 'comm/upload_bytes_uncompressed'


def tensor_bytes(array: np.ndarray) -> int:
  """Bytes of one dense tensor."""
  return int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize


def quantized_bytes(array: np.ndarray) -> int:
  """Bytes of `array` as TFF's compression aggregator sends it (encoded if large enough)."""
  if array.size <= QUANTIZATION_THRESHOLD:
    return tensor_bytes(array)
  spec = tf.TensorSpec(array.shape, tf.float32)
  encoder = te.encoders.as_simple_encoder(te.encoders.uniform_quantization(QUANTIZATION_BITS), spec)
  encoded, _ = encoder.encode(tf.constant(array, tf.float32), encoder.initial_state())
  return sum(tensor_bytes(t.numpy()) for t in tf.nest.flatten(encoded))


@dataclasses.dataclass(frozen=True)
class CommunicationCost:
  """Bytes per hospital per round."""

  broadcast: int
  upload: int
  upload_uncompressed: int

  def round_metrics(self, num_hospitals: int) -> dict[str, float]:
    """The round's totals over `num_hospitals` hospitals, as metrics."""
    return {
      BROADCAST_BYTES: float(self.broadcast * num_hospitals),
      UPLOAD_BYTES: float(self.upload * num_hospitals),
      UPLOAD_BYTES_UNCOMPRESSED: float(self.upload_uncompressed * num_hospitals),
    }


def communication_cost(model: tf.keras.Model, *, aggregator: str = 'mean') -> CommunicationCost:
  """What one hospital receives and sends per round for `model` under `aggregator`."""
  trainable = [w.numpy() for w in model.trainable_weights]
  everything = [w.numpy() for w in model.weights]
  weight_bytes = np.dtype(np.float32).itemsize
  plain = sum(tensor_bytes(a) for a in trainable) + weight_bytes
  upload = plain
  if aggregator == 'compression':
    upload = sum(quantized_bytes(a) for a in trainable) + weight_bytes
  elif aggregator == 'secure':
    values = sum(a.size for a in trainable)
    upload = values * np.dtype(np.int64).itemsize + weight_bytes + np.dtype(np.int32).itemsize
  return CommunicationCost(sum(tensor_bytes(a) for a in everything), upload, plain)
