"""A hospital worker's side of secure aggregation: its keys checked at start, its masks' home.

With `--mask_key` and `--mask_public_keys` the worker loads its private key
and every public key it needs (the hospitals of the approved plans that use
secure aggregation), each checked against the consortium CA (`mask_keys`),
before it serves anything; the gate then writes this hospital's mask for each
round (`learning.secure.masks.MaskWriter`) into the TFF worker's private
directory, where the round's computation reads it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

from tff_med import stale_files
from tff_med.deployment import mask_keys
from tff_med.errors import ConfigError
from tff_med.learning.secure import masks

VIEW_PREFIX = 'tff_med_view_'


@dataclasses.dataclass(frozen=True)
class HospitalKeys:
  """This hospital's private key and its peers' checked public keys."""

  hospital: str
  private_key: object
  public_keys: dict

  def writer(self, root: str) -> masks.MaskWriter:
    """The mask writer of this hospital for a worker whose directory is `root`."""
    return masks.MaskWriter(self.hospital, self.private_key, self.public_keys, root)


def load(config, hospitals: list[str], approvals) -> HospitalKeys | None:
  """Checks and loads the hospital's mask keys; None when it takes part in no secure run.

  Raises:
    ConfigError: An approved plan uses secure aggregation but no key is given,
      half of the key flags, no consortium CA to check keys against, several
      hospitals on one worker, or a key `mask_keys` refuses (naming the hospital).
  """
  secure = approvals.secure_hospitals() if approvals is not None else set()
  if not config.mask_key and not config.mask_public_keys:
    if secure:
      raise ConfigError(
        'an approved plan uses secure aggregation (algorithm.aggregator=secure): start the '
        'worker with --mask_key and --mask_public_keys (experiments.make_mask_key)'
      )
    return None
  if not (config.mask_key and config.mask_public_keys):
    raise ConfigError('secure aggregation needs both --mask_key and --mask_public_keys')
  if not config.tls_ca:
    raise ConfigError(
      'secure aggregation checks the public mask keys against the consortium CA: give --tls_ca '
      '(with --tls_cert and --tls_key)'
    )
  if len(hospitals) != 1:
    raise ConfigError(
      f'secure aggregation: one hospital per worker (its key is its own), this worker serves '
      f'{", ".join(hospitals)}'
    )
  hospital = hospitals[0]
  needed = ({hospital} | secure) if approvals is not None else None  # None: every key file.
  public_keys = mask_keys.load_public_keys(config.mask_public_keys, config.tls_ca, needed)
  if hospital not in public_keys:
    raise ConfigError(f'hospital {hospital!r} has no public mask key in {config.mask_public_keys}')
  private_key = mask_keys.load_private_key(config.mask_key, hospital, public_keys)
  return HospitalKeys(hospital, private_key, public_keys)


def link_view(root: str, hospitals: list[str]) -> str:
  """A new private directory linking each hospital's shard directory: the worker's, masks beside."""
  stale_files.sweep(VIEW_PREFIX)
  directory = tempfile.mkdtemp(prefix=stale_files.owned_name(VIEW_PREFIX))
  for hospital in hospitals:
    os.symlink(os.path.abspath(os.path.join(root, hospital)), os.path.join(directory, hospital))
  return directory
