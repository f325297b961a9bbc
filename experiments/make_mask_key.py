r"""Run at each hospital: make its secure-aggregation key pair and sign the public half.

  uv run python -m experiments.make_mask_key --hospital=cleveland \
      --tls_cert=cleveland.pem --tls_key=cleveland.key --out=/srv/mask_keys

Writes /srv/mask_keys/cleveland.mask.key (the private key, mode 0600: it never
leaves the hospital; give it to the worker as --mask_key) and
cleveland.mask.pub.json (the public key, signed with the hospital's TLS key and
carrying its certificate). Send the .pub.json file to the coordinator, who
gathers every hospital's into one directory and relays it to all of them; each
worker checks every file against the consortium CA (--mask_public_keys).
"""

from absl import app, flags

from experiments import console

from tff_med.deployment import mask_keys

_HOSPITAL = flags.DEFINE_string('hospital', None, 'This hospital’s name (as its certificate).')
_TLS_CERT = flags.DEFINE_string('tls_cert', None, 'This hospital’s certificate (PEM).')
_TLS_KEY = flags.DEFINE_string('tls_key', None, 'This hospital’s TLS private key (PEM, EC).')
_OUT = flags.DEFINE_string('out', None, 'Directory for the key pair (created).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  private, public = mask_keys.make_key(_HOSPITAL.value, _OUT.value, _TLS_CERT.value, _TLS_KEY.value)
  print(f'private key: {private} (keep it here); public key to publish: {public}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['hospital', 'tls_cert', 'tls_key', 'out'])
  console.run(main)
