"""What a plan does, in words a data steward can check: `summarize` and `render`."""

from __future__ import annotations

import numpy as np

from tff_med.deployment import fingerprint, shard_format


def _model(model) -> dict:
  layers = [
    f'{layer.name} ({type(layer).__name__}): output {layer.output.shape}, '
    f'{layer.count_params()} parameters'
    for layer in model.layers
  ]
  shapes = [list(w.shape) for w in model.trainable_weights]
  return {
    'layers': layers,
    'parameters': int(model.count_params()),
    'update_values': int(sum(np.prod(s) for s in shapes)),
    'update_shapes': str(shapes),
  }


FILES = {
  False: '<hospital>/train.csv and <hospital>/test.csv under the data root',
  True: (
    '<hospital>/train.npz and test.npz (or MedMNIST data.npz) under the data root, read by '
    'the hospital worker at start into tensor files in a private directory'
  ),
}


def _features(config, features):
  shape = config.data.get('image_shape')
  if config.data.source == 'npz' and shape:
    return f'images of {"x".join(map(str, shape))} ({len(features)} values each)'
  return list(features)


def _image_shape(config) -> dict:
  shape = config.data.get('image_shape')
  return {'image_shape': list(shape)} if config.data.source == 'npz' and shape else {}


def _statistics(config, features) -> str:
  shape = config.data.get('image_shape')
  if config.data.source == 'npz' and shape:
    return f'{shape[-1]} channels (over every pixel)'
  return f'{len(features)} features'


MISSING = {
  'error': 'refused: a row with a missing value stops the study, naming the row',
  'drop_rows': 'rows with a missing value are left out, at the hospital',
  'impute_mean': (
    "missing features are filled with this hospital's training mean, at the hospital; "
    'a row with a missing label stops the study'
  ),
}


def _privacy(config) -> dict:
  p = config.privacy
  if p.level == 'patient':
    return {
      'level': "patient (DP-SGD in this hospital's worker)",
      'clipping': f"each patient's gradient clipped to L2 norm {p.l2_norm_clip} at every step",
      'noise': (
        'Gaussian, with the noise multiplier the coordinator sends with each round (from the '
        "target epsilon and this hospital's row count); the update leaves already noised"
      ),
    }
  if p.level == 'hospital':
    return {
      'level': 'hospital (TFF dp_aggregator)',
      'epsilon': (
        'noise is added to the sum of the updates: it protects the released model, not an '
        'update from the coordinator'
      ),
    }
  return {
    'level': 'none',
    'epsilon': 'none spent: no differential privacy; each update reaches the coordinator',
  }


def _attack(config) -> str:
  a = config.attack
  if a.kind == 'none':
    return 'none'
  return (
    f'robustness study: {", ".join(a.hospitals)} will be asked to corrupt their '
    f'{"training labels" if a.kind == "label_flip" else "update"} ({a.kind})'
  )


def _per_round(config, update) -> str:
  if config.algorithm.aggregator != 'secure':
    return (
      f'the model update, {update["update_values"]} float32 values {update["update_shapes"]} '
      "weighted by the examples trained on, and the round's training metric sums"
    )
  s = config.secure
  return (
    f'the model update, {update["update_values"]} values clipped to [-{s.clip}, {s.clip}], '
    f'quantized to {s.quantization_bits} bits, multiplied by its weight (examples trained on, '
    f'sent in the clear) and masked modulo 2^{s.modulus_bits} with masks agreed with the other '
    "hospitals of the round (only the round's sum can be read); the round's training metric "
    'sums and the number of coordinates clipped'
  )


def _secure(config) -> dict:
  if config.algorithm.aggregator != 'secure':
    return {}
  s = config.secure
  return {
    'secure_aggregation': {
      'clip': s.clip,
      'quantization_bits': s.quantization_bits,
      'modulus_bits': s.modulus_bits,
      'keys': "this hospital's X25519 key, which never leaves it; peers' keys signed by their TLS keys",
    }
  }


def summarize(config, hospitals: list[str], features, model) -> dict:
  """The plan's settings and what leaves each hospital, as nested plain values."""
  a, d = config.algorithm, config.data
  classes = f'0..{d.num_classes - 1}'
  update = _model(model)
  return {
    'study': {'name': config.name, 'seed': config.seed, 'rounds': config.training.rounds},
    'hospitals': list(hospitals),
    'reads': {
      'files': FILES[d.source == 'npz'],
      'features': _features(config, features),
      **_image_shape(config),
      'label': d.label,
      'classes': classes,
      'missing_values': MISSING[d.missing],
    },
    'model': {'name': config.model.name, **update},
    'algorithm': {
      k: a[k]
      for k in (
        'name',
        'client_weighting',
        'client_optimizer',
        'client_learning_rate',
        'client_momentum',
        'server_optimizer',
        'server_learning_rate',
        'server_momentum',
        'proximal_strength',
        'aggregator',
        'clients_per_round',
      )
    },
    'local_training': {
      'batch_size': d.batch_size,
      'local_steps': d.local_steps,
      'local_epochs': d.local_epochs,
      'scaling': d.scaling,
    },
    **_secure(config),
    'privacy': _privacy(config),
    'attack': _attack(config),
    'leaves_the_hospital': {
      'schema': (
        f'per shard: the header line, the rows kept and the rows with a missing value, the '
        f'first row the missing-value policy cannot use (its number), and the histogram of {d.label!r} '
        f'over classes {classes} '
        f'(counts 1 to {shard_format.MIN_COUNT - 1} shown as "fewer than {shard_format.MIN_COUNT}")'
      ),
      'moments': (
        f'the count, sum and sum of squares of each of the {_statistics(config, features)} '
        'over the training shard (for standardization)'
      ),
      'per_round': _per_round(config, update),
      'per_evaluation': 'metric sums over the test shard (loss, accuracy, AUC counts)',
    },
  }


def _lines(entries: dict, indent: str = '') -> list[str]:
  lines = []
  for key, value in entries.items():
    name = key.replace('_', ' ')
    if isinstance(value, dict):
      lines += [f'{indent}- **{name}**', *_lines(value, indent + '  ')]
    elif isinstance(value, list) and all(len(str(v)) <= 30 for v in value):
      lines.append(f'{indent}- **{name}**: {", ".join(map(str, value))}')  # Names: one line.
    elif isinstance(value, list):
      lines += [f'{indent}- **{name}**', *(f'{indent}  - {v}' for v in value)]
    else:
      lines.append(f'{indent}- **{name}**: {value}')
  return lines


def render(content: dict) -> str:
  """The plan as Markdown: its summary, then every computation and what it returns."""
  rows = [
    f'| {c["name"]} | {c["part"]} | `{fingerprint.short(c["fingerprint"])}` | `{c["returns"]}` |'
    for c in content['computations']
  ]
  versions = ', '.join(f'{k} {v}' for k, v in content['versions'].items())
  return '\n'.join(
    [
      f'# Plan {content["digest"][:16]}',
      '',
      f'Exported with {versions}.',
      '',
      *_lines(content['summary']),
      '',
      '## Computations a hospital runs',
      '',
      'TFF runs each in three parts, and every part returns its result to the coordinator: '
      '`up_to_merge` at every hospital on its own shards; `merge` (two partial results '
      'combined) and `after_merge` (the finish) at one of the hospitals.',
      '',
      '| computation | part | fingerprint | returns |',
      '|---|---|---|---|',
      *rows,
      '',
    ]
  )
