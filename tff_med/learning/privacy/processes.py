"""Learning processes with differential privacy, at the patient or the hospital level.

Patient level: TFF's FedAvg templates around tff_med's DP-SGD client work
(`dp_sgd`). Hospital level: TFF's `build_weighted_fed_avg` with TFF's
`dp_aggregator`, adapted to the weighted interface so non-finite updates are
still counted (`non_finite`); the DP mean itself stays unweighted, as TFF's DP
factories require.
"""

from __future__ import annotations

import tensorflow_federated as tff

from tff_med.errors import ConfigError
from tff_med.learning import algorithms, non_finite
from tff_med.learning.privacy import dp_sgd
from tff_med.learning.privacy.budget import HOSPITAL_KEY, PrivacyPlan


class UnweightedAsWeighted(tff.aggregators.WeightedAggregationFactory):
  """Presents an unweighted factory as a weighted one that ignores the weights.

  TFF has this adapter only internally (`factory_utils`); this one is ours.
  """

  def __init__(self, inner: tff.aggregators.UnweightedAggregationFactory):
    self._inner = inner

  def create(self, value_type, weight_type) -> tff.templates.AggregationProcess:
    inner = self._inner.create(value_type)

    @tff.federated_computation(
      inner.next.type_signature.parameter[0],
      tff.FederatedType(value_type, tff.CLIENTS),
      tff.FederatedType(weight_type, tff.CLIENTS),
    )
    def next_fn(state, value, weight):
      del weight
      return inner.next(state, value)

    return tff.templates.AggregationProcess(inner.initialize, next_fn)


def check_compatible(config, plan: PrivacyPlan | None) -> None:
  """Refuses privacy settings the algorithm, aggregator or attack cannot honour.

  Raises:
    ConfigError: DP with fedprox or fedsgd; patient-level DP with an update attack;
      hospital-level DP with an aggregator other than 'mean'.
  """
  if plan is None:
    return
  name, aggregator = config.algorithm.name, config.algorithm.aggregator
  if name in ('fedprox', 'fedsgd'):
    raise ConfigError(f'{plan.level}-level DP runs with the FedAvg family only, not {name!r}')
  if plan.level == 'patient' and config.attack.kind not in ('none', 'label_flip'):
    raise ConfigError('update attacks and patient-level DP cannot be simulated together')
  if plan.level == 'hospital' and aggregator != 'mean':
    raise ConfigError(
      f"hospital-level DP replaces the aggregator with TFF's dp_aggregator; set "
      f"algorithm.aggregator='mean', not {aggregator!r}"
    )


def build_private_learning_process(
  model_fn, config, num_clients: int, plan: PrivacyPlan, per_example_loss
) -> tff.learning.templates.LearningProcess:
  """The learning process of `config` with the privacy of `plan`.

  Args:
    model_fn: No-arg function returning a fresh `tff.learning.models.VariableModel`.
    config: The experiment config.
    num_clients: Most hospitals in one round.
    plan: A `privacy.PrivacyPlan` (level 'patient' or 'hospital').
    per_example_loss: (labels, predictions) -> per-example losses (patient level).
  """
  check_compatible(config, plan)
  a = config.algorithm
  algorithms.validate(a)
  client_optimizer = algorithms.client_optimizer(a)
  if plan.level == 'patient':
    return algorithms.compose_fed_avg(
      model_fn,
      client_work=dp_sgd.build_dp_sgd_client_work(
        model_fn,
        per_example_loss,
        client_optimizer,
        l2_norm_clip=plan.l2_norm_clip,
        weighted=a.client_weighting == 'num_examples',
      ),
      server_optimizer=algorithms.server_optimizer(a),
      model_aggregator=algorithms.model_aggregator(a, num_clients),
    )
  if plan.level != 'hospital':
    raise ConfigError(f'no private learning process for privacy level {plan.level!r}')
  per_round = a.clients_per_round or num_clients
  dp_mean = tff.learning.dp_aggregator(plan.noise_multipliers[HOSPITAL_KEY], per_round)
  return tff.learning.algorithms.build_weighted_fed_avg(
    model_fn,
    client_optimizer_fn=client_optimizer,
    server_optimizer_fn=algorithms.server_optimizer(a),
    client_weighting=tff.learning.ClientWeighting.UNIFORM,
    model_aggregator=non_finite.CountZeroWeightFactory(UnweightedAsWeighted(dp_mean)),
    loop_implementation=tff.learning.LoopImplementation.DATASET_ITERATOR,
  )
