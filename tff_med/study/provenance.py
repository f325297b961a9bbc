"""What a study ran on and with: its manifest, and which engine ran each of its runs."""

from __future__ import annotations

import glob
import json
import os

from tff_med.run import manifest, outputs


def write_study_manifest(workdir: str, config, seeds: list[int], shard_files: list[str]) -> None:
  """The study's manifest (`run.manifest`): its config, seeds, versions and shard file hashes."""
  manifest.write_manifest(
    workdir, config=config.to_dict(), seeds=list(seeds), shard_files=sorted(shard_files)
  )


def record_engines(workdir: str, summary: str) -> str:
  """Says which engine ran each study run: in the manifest (per run) and in the summary.

  Returns the summary's line ('Engines: fedavg fused; fedprox tff; ...', by method).
  """
  runs = os.path.join(workdir, outputs.RUNS_DIR)
  engines = {}
  for path in sorted(glob.glob(os.path.join(runs, '**', outputs.RESULTS_JSON), recursive=True)):
    with open(path) as f:
      engines[os.path.relpath(os.path.dirname(path), runs)] = json.load(f)['engine']
  manifest.add_to_manifest(workdir, engines=engines)
  by_method = {}
  for run, engine in engines.items():
    by_method.setdefault(os.path.dirname(run), set()).add(engine)
  line = 'Engines (runtime.engine): ' + '; '.join(
    f'{method} {"+".join(sorted(used))}' for method, used in by_method.items()
  )
  with open(os.path.join(workdir, summary), 'a') as f:
    f.write(f'\n{line}.\n')
  return line
