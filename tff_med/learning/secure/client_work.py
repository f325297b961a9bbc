"""Each hospital's mask, carried into the round beside its data.

TFF's aggregators see only (update, weight) at a client. The mask a hospital
adds must come from that hospital: its data holds the mask token
(`masks.MaskRequest.token`), the hospital's side has written the mask file by
the time the worker reads it, and `build_masked_client_work` wraps any client
work (TFF's model-delta work, DP-SGD, an attacked one) so its update leaves
paired with the mask, for `aggregator.MaskedMeanFactory`. Ours: TFF has none.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


def model_size(model_fn) -> int:
  """The number of trainable values of the model `model_fn` builds (a mask's length)."""
  with tf.Graph().as_default():
    model = model_fn()
  return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def mask_type(size: int) -> tff.SequenceType:
  """The one-element dataset of a hospital's mask."""
  return tff.SequenceType(tff.TensorType(np.int64, [size]))


def build_masked_client_work(inner: tff.learning.templates.ClientWorkProcess, size: int):
  """Wraps `inner` so clients take (mask dataset, inner data) and send <update, mask>."""
  state_type, weights_type, data_type = inner.next.type_signature.parameter
  result_type = inner.next.type_signature.result.result.member
  masks = mask_type(size)

  @tff.tensorflow.computation(result_type, masks)
  def paired(result, mask_data):
    mask = mask_data.reduce(tf.zeros([size], tf.int64), lambda _, element: element)
    return tff.learning.templates.ClientResult(
      update=(result.update, mask), update_weight=result.update_weight
    )

  @tff.federated_computation(
    state_type, weights_type, tff.FederatedType((masks, data_type.member), tff.CLIENTS)
  )
  def next_fn(state, weights, client_data):
    output = inner.next(state, weights, client_data[1])
    result = tff.federated_map(paired, (output.result, client_data[0]))
    return tff.templates.MeasuredProcessOutput(output.state, result, output.measurements)

  return tff.learning.templates.ClientWorkProcess(inner.initialize, next_fn)
