"""When to stop before `rounds`: no improvement for `patience` rounds, or a target reached.

The metric is seen only at evaluated rounds (`training.eval_every`), so patience
counts rounds since the best evaluation, checked at each evaluation.
"""

from __future__ import annotations

import dataclasses
import math

from tff_med.errors import ConfigError

MODES = ('max', 'min')


@dataclasses.dataclass
class StoppingRule:
  """Watches one evaluation metric (e.g. 'eval/all/auc').

  Attributes:
    metric: The namespaced metric to watch.
    mode: 'max' if larger is better, else 'min'.
    patience: Stop after this many rounds without improvement (0: never).
    target: Stop as soon as the metric reaches this value (None: never).
    best: Best value seen so far (checkpointed with the run).
    best_round: The round it was seen at.
  """

  metric: str
  mode: str = 'max'
  patience: int = 0
  target: float | None = None
  best: float = math.nan
  best_round: int = 0

  def __post_init__(self):
    if self.mode not in MODES:
      raise ConfigError(f'stopping.mode must be one of {MODES}, got {self.mode!r}')
    if self.patience < 0:
      raise ConfigError(f'stopping.patience must be >= 0, got {self.patience}')

  def _better(self, value: float, than: float) -> bool:
    return math.isnan(than) or (value > than if self.mode == 'max' else value < than)

  def update(self, round_num: int, metrics: dict) -> str | None:
    """Records this round's evaluation; returns why to stop, or None to go on."""
    value = metrics.get(self.metric, math.nan)
    if math.isnan(value):
      return None
    if self._better(value, self.best):
      self.best, self.best_round = value, round_num
    if self.target is not None and not self._better(self.target, value):
      return f'{self.metric} reached the target {self.target} ({value:.4f}) at round {round_num}'
    if self.patience and round_num - self.best_round >= self.patience:
      return (
        f'{self.metric} did not improve for {round_num - self.best_round} rounds '
        f'(best {self.best:.4f} at round {self.best_round})'
      )
    return None
