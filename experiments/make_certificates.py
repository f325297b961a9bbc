r"""Make a small consortium CA and per-site certificates, for trying mutual TLS out.

  uv run python -m experiments.make_certificates --out=certs \
      --sites=coordinator,cleveland,hungary,switzerland,va_long_beach [--hosts=localhost,127.0.0.1]

Writes ca.pem, ca-private/ca.key (keep it offline) and <site>.pem / <site>.key
for each site, valid for one year for the given host names. The site named
`coordinator` gets a client-only certificate; every other site a server-only
one carrying its name, which the coordinator checks against deployment.workers.
Give each hospital its own pair and ca.pem; the coordinator gets
coordinator.pem/.key and ca.pem.
"""

from absl import app, flags

from experiments import console

from tff_med.deployment import certificates

_OUT = flags.DEFINE_string('out', 'certs', 'Output directory.')
_SITES = flags.DEFINE_list('sites', None, 'Site names (hospitals and the coordinator).')
_HOSTS = flags.DEFINE_list(
  'hosts', ['localhost', '127.0.0.1'], 'Host names or IPs the certificates are valid for.'
)
_DAYS = flags.DEFINE_integer('valid_days', 365, 'Validity in days.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  paths = certificates.make_consortium_certificates(
    _OUT.value,
    _SITES.value,
    hosts={site: _HOSTS.value for site in _SITES.value},
    valid_days=_DAYS.value,
  )
  print(
    f'CA: {_OUT.value}/ca.pem (its key: {_OUT.value}/ca-private/ca.key, keep it offline); '
    f'certificates: {", ".join(paths.values())}'
  )


if __name__ == '__main__':
  flags.mark_flags_as_required(['sites'])
  console.run(main)
