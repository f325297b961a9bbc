r"""Run at each hospital: serve this hospital's shards to the consortium's coordinator.

  uv run python -m experiments.hospital_worker --data_root=DIR --port=P \
      [--tls_cert=site.pem --tls_key=site.key --tls_ca=ca.pem]

DIR holds `<hospital>/train.csv` and `<hospital>/test.csv` for each hospital
served (usually one). The shards are validated here, then TFF's worker starts
with DIR as its working directory; the coordinator sends only shard names and
model weights. The label is each study's choice: the coordinator names it when
it asks for the schema, and this hospital checks its label values then. With
TLS flags, only clients holding a certificate signed by the
consortium CA get through; the raw TFF worker listens on --worker_port, which
the hospital must keep closed to the network (see the README). Logs one line
when ready; SIGINT or SIGTERM stops the TFF worker it started.
"""

import tensorflow  # noqa: F401  (before app.run; see experiments/train.py)
from absl import app, flags

from experiments import console

from tff_med.deployment import hospital

_DATA_ROOT = flags.DEFINE_string('data_root', None, 'Directory of this hospital’s shards.')
_PORT = flags.DEFINE_integer('port', None, 'Port the coordinator connects to.')
_TLS_CERT = flags.DEFINE_string('tls_cert', '', 'This hospital’s certificate (PEM).')
_TLS_KEY = flags.DEFINE_string('tls_key', '', 'This hospital’s private key (PEM).')
_TLS_CA = flags.DEFINE_string('tls_ca', '', 'The consortium CA certificate (PEM).')
_WORKER_PORT = flags.DEFINE_integer(
  'worker_port', 0, 'With TLS: loopback port of the raw TFF worker (0: any free port).'
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = hospital.HospitalConfig(
    data_root=_DATA_ROOT.value,
    port=_PORT.value,
    tls_cert=_TLS_CERT.value,
    tls_key=_TLS_KEY.value,
    tls_ca=_TLS_CA.value,
    worker_port=_WORKER_PORT.value,
  )
  hospital.serve(config, print_fn=lambda line: print(line, flush=True))


if __name__ == '__main__':
  flags.mark_flags_as_required(['data_root', 'port'])
  console.run(main)
