"""PNG figures of a study (matplotlib, no display needed)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str) -> None:
  """Lays out `fig`, writes it as a PNG and frees it."""
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def heatmap(matrix: dict, metric: str, path: str) -> None:
  """Cross-site matrix: rows = where the model was trained, columns = where tested."""
  rows = list(matrix)
  cols = list(next(iter(matrix.values())))
  values = np.array([[matrix[r][c] for c in cols] for r in rows], dtype=float)
  fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 3, 0.45 * len(rows) + 1.5))
  image = ax.imshow(np.ma.masked_invalid(values), cmap='viridis', vmin=0.4, vmax=1.0)
  ax.set_xticks(range(len(cols)), cols, rotation=30, ha='right')
  ax.set_yticks(range(len(rows)), rows)
  for i in range(len(rows)):
    for j in range(len(cols)):
      text = 'n/a' if math.isnan(values[i, j]) else f'{values[i, j]:.2f}'
      ax.text(j, i, text, ha='center', va='center', color='white', fontsize=8)
  ax.set_xlabel('tested at')
  ax.set_ylabel('trained by')
  ax.set_title(f'Cross-site {metric} (mean over seeds)')
  fig.colorbar(image, ax=ax)
  save(fig, path)


def bars(stats: dict, hospitals: list[str], path: str, metric: str = 'accuracy') -> None:
  """`metric` per hospital per method; error bars are 95% CIs of the mean over seeds."""
  methods = list(stats)
  width = 0.8 / len(methods)
  fig, ax = plt.subplots(figsize=(2 + 1.8 * len(hospitals), 4.5))
  for k, method in enumerate(methods):
    means = [stats[method][h][0] for h in hospitals]
    half = [1.96 * stats[method][h][1] / math.sqrt(max(stats[method][h][2], 1)) for h in hospitals]
    ax.bar(np.arange(len(hospitals)) + k * width, means, width, yerr=half, label=method, capsize=2)
  ax.set_xticks(np.arange(len(hospitals)) + 0.4 - width / 2, hospitals)
  ax.set_ylabel(metric)
  ax.set_ylim(0, 1)
  ax.legend(fontsize=7, ncol=4, loc='upper center', bbox_to_anchor=(0.5, -0.08))
  ax.set_title(f'Test {metric} per hospital (95% CI over seeds)')
  save(fig, path)


def learning_curves(curves: dict, path: str, metric: str = 'AUC-ROC') -> None:
  """`metric` on the union of test sets vs round, mean over seeds, per federated method."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for method, per_seed in curves.items():
    rounds = [r for r, _ in per_seed[0]]
    values = np.mean([[v for _, v in seed] for seed in per_seed], axis=0)
    ax.plot(rounds, values, marker='o', label=method)
  ax.set_xlabel('round')
  ax.set_ylabel(f'{metric}, union of test sets')
  ax.legend(fontsize=8)
  ax.set_title('Federated learning curves (mean over seeds)')
  save(fig, path)


def roc_by_hospital(predictions: dict, method: str, path: str) -> None:
  """ROC curve at each hospital with two classes in its test set (seed 0)."""
  fig, ax = plt.subplots(figsize=(5, 5))
  for hospital, (y, p) in predictions.items():
    if len(np.unique(y)) < 2:
      continue
    order = np.argsort(-p, kind='mergesort')
    hits = y[order] == 1
    tpr = np.concatenate([[0], np.cumsum(hits) / hits.sum()])
    fpr = np.concatenate([[0], np.cumsum(~hits) / (~hits).sum()])
    ax.plot(fpr, tpr, label=hospital)
  ax.plot([0, 1], [0, 1], '--', color='grey', linewidth=0.8)
  ax.set_xlabel('1 - specificity')
  ax.set_ylabel('sensitivity')
  ax.set_title(f'ROC per hospital, {method} (seed 0)')
  ax.legend(fontsize=8)
  save(fig, path)
