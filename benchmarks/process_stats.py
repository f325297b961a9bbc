"""Resident memory of this process and of the TFF workers it started (read from /proc)."""

import os


def _status_kib(pid: int, field: str) -> int:
  with open(f'/proc/{pid}/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1])
  return 0


def worker_pids() -> list[int]:
  """PIDs of `worker_binary` processes whose parent is this process."""
  pids = []
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
      with open(f'/proc/{entry}/comm') as f:
        name = f.read().strip()
    except OSError:
      continue
    if int(fields[1]) == os.getpid() and name.startswith('worker_binary'):
      pids.append(int(entry))
  return pids


def rss_mib() -> tuple[float, float]:
  """(this process's RSS, its TFF workers' total RSS) in MiB."""
  workers = sum(_status_kib(p, 'VmRSS') for p in worker_pids())
  return _status_kib(os.getpid(), 'VmRSS') / 1024, workers / 1024


def peak_rss_mib() -> tuple[float, float]:
  """(this process's peak RSS, its TFF workers' total peak RSS) in MiB."""
  workers = sum(_status_kib(p, 'VmHWM') for p in worker_pids())
  return _status_kib(os.getpid(), 'VmHWM') / 1024, workers / 1024


def reset_peak_rss() -> None:
  """Resets this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
