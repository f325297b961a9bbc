r"""Run at each hospital: serve this hospital's shards to the consortium's coordinator.

  uv run python -m experiments.hospital_worker --data_root=DIR --port=P \
      --approved=APPROVED_DIR [--tls_cert=site.pem --tls_key=site.key --tls_ca=ca.pem]

DIR holds `<hospital>/train.csv` and `<hospital>/test.csv` for each hospital
served (usually one). The shards and the approved plans are checked here, then
TFF's worker starts over DIR on a loopback port, behind a gate on --port that
relays only the computations of plans this hospital approved
(`experiments.approve_plan` writes APPROVED_DIR) and only shard names of the
hospitals validated here. With TLS flags, only the coordinator's certificate
(signed by the consortium CA) gets through. With --mask_key and
--mask_public_keys (secure aggregation), the gate writes this hospital's mask
for each round from its own key. The raw worker port must stay
closed to the network (docs/deployment.md). Logs one line when ready; SIGINT or
SIGTERM stops the TFF worker it started.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags, logging

from experiments import console

from tff_med.deployment import hospital

_DATA_ROOT = flags.DEFINE_string('data_root', None, 'Directory of this hospital’s shards.')
_PORT = flags.DEFINE_integer('port', None, 'Port the coordinator connects to (the gate).')
_APPROVED = flags.DEFINE_string(
  'approved', '', 'Directory of the plans this hospital approved (experiments.approve_plan).'
)
_ALLOW_UNAPPROVED = flags.DEFINE_bool(
  'allow_unapproved_computations',
  False,
  'DEVELOPMENT ONLY: admit any computation the coordinator sends (logged, loudly).',
)
_TLS_CERT = flags.DEFINE_string('tls_cert', '', 'This hospital’s certificate (PEM).')
_TLS_KEY = flags.DEFINE_string('tls_key', '', 'This hospital’s private key (PEM).')
_TLS_CA = flags.DEFINE_string('tls_ca', '', 'The consortium CA certificate (PEM).')
_TLS_CRL = flags.DEFINE_string(
  'tls_crl',
  '',
  'A revocation list signed by the consortium CA (PEM); revoked certificates are refused.',
)
_COORDINATOR = flags.DEFINE_string(
  'coordinator', 'coordinator', 'With TLS: the common name of the coordinator’s certificate.'
)
_WORKER_PORT = flags.DEFINE_integer(
  'worker_port', 0, 'Port of the raw TFF worker behind the gate (0: any free port).'
)
_MASK_KEY = flags.DEFINE_string(
  'mask_key',
  '',
  'Secure aggregation: this hospital’s private mask key (experiments.make_mask_key).',
)
_MASK_PUBLIC_KEYS = flags.DEFINE_string(
  'mask_public_keys',
  '',
  'Secure aggregation: the directory of the consortium’s signed public mask keys.',
)
_ISOLATION = flags.DEFINE_enum(
  'isolation',
  'auto',
  ['auto', 'namespace', 'none'],
  'The raw TFF worker in its own network namespace (auto: where Linux allows it).',
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = hospital.HospitalConfig(
    data_root=_DATA_ROOT.value,
    port=_PORT.value,
    approved=_APPROVED.value,
    allow_unapproved=_ALLOW_UNAPPROVED.value,
    tls_cert=_TLS_CERT.value,
    tls_key=_TLS_KEY.value,
    tls_ca=_TLS_CA.value,
    tls_crl=_TLS_CRL.value,
    coordinator=_COORDINATOR.value,
    worker_port=_WORKER_PORT.value,
    isolation=_ISOLATION.value,
    mask_key=_MASK_KEY.value,
    mask_public_keys=_MASK_PUBLIC_KEYS.value,
  )
  if config.allow_unapproved:
    logging.warning('ANY computation will be admitted: --allow_unapproved_computations is on.')
  hospital.serve(config, print_fn=lambda line: print(line, flush=True))


if __name__ == '__main__':
  flags.mark_flags_as_required(['data_root', 'port'])
  console.run(main)
