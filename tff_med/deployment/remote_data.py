"""What the coordinator sends a hospital instead of data: client inputs naming its shards.

A client input names a shard file relative to the worker's data root, the
shuffle seed, the row count and the standardization statistics to apply
('cleveland/train.csv|seed|rows|mean;..|std;..'; '.npz' for image shards). The computations that read
it, at the hospital, are `shard_format`'s; the gate admits no other string.
"""

from __future__ import annotations

import re

SEPARATOR = '|'
SPLITS = ('train', 'test')

_NUMBER = r'-?[0-9.eE+-]+|nan|inf'
_CLIENT_INPUT = re.compile(
  rf'(?P<hospital>[A-Za-z0-9_.-]+)/(?P<split>train|test)\.(?:csv|npz)\|[0-9]+\|[0-9]+'
  rf'\|(?:(?:{_NUMBER})(?:;(?:{_NUMBER}))*)?\|(?:(?:{_NUMBER})(?:;(?:{_NUMBER}))*)?'
)


def client_input(
  hospital: str, split: str, *, seed=0, rows=0, mean=(), std=(), extension='csv'
) -> str:
  """The string a hospital's worker turns into its `split` dataset (statistics: float64)."""

  def numbers(values):
    return ';'.join(repr(float(v)) for v in values)

  return SEPARATOR.join(
    [f'{hospital}/{split}.{extension}', str(seed), str(rows), numbers(mean), numbers(std)]
  )


def parse_client_input(text: str) -> tuple[str, str] | None:
  """(hospital, split) of a well-formed client input, or None for anything else."""
  match = _CLIENT_INPUT.fullmatch(text)
  if match is None or match['hospital'] in ('.', '..'):
    return None
  return match['hospital'], match['split']
