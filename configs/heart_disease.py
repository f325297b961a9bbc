"""FedAvg on the UCI Heart Disease data of four hospitals (FLamby's Fed-Heart-Disease).

What it runs: logistic regression, FedAvg weighted by examples, FLamby's budget
(every hospital takes 100 SGD steps of batch 4 per round; 15 rounds), features
standardized with federation-wide statistics computed by a TFF computation.
The shards are written to `data/heart_disease/` on first use.

  uv run python -m experiments.train --config=configs/heart_disease.py
  uv run python -m experiments.train --config=configs/heart_disease.py:smoke   # 2 rounds

Takes about 30 s on 2 cores (10 s of it importing TensorFlow). Expect a mean
accuracy over the four hospitals near 0.80 and an AUC near 0.80 (Switzerland's
test shard has one class, so its AUC is undefined); `benchmarks/heart_accuracy.py`
measures it over 5 seeds. FLamby reports 0.685 for FedAvg, 0.735 pooled.
"""

import os

import ml_collections


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """Returns the config; `variant` 'smoke' makes a 2-round run for tests."""
  config = ml_collections.ConfigDict()
  config.name = 'heart_disease'
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = 'heart_disease'
  config.data.root = 'data/heart_disease'
  config.data.label = 'heart_disease'
  config.data.event = ''  # Survival studies only (configs/survival_shards.py): the event
  config.data.time = ''  # column (1 observed, 0 censored) and the time column.
  config.data.features = ()  # Empty: every numeric column but the label.
  config.data.num_classes = 2
  config.data.missing = 'error'  # Or 'drop_rows', 'impute_mean'.
  config.data.scaling = 'federated'  # Or 'per_hospital' (FLamby's), 'none'.
  config.data.batch_size = 4
  config.data.local_steps = 100  # Batches per hospital per round (FLamby's protocol)...
  config.data.local_epochs = 0  # ...or passes over each shard per round (set one).
  config.data.eval_batch_size = 256

  config.model = ml_collections.ConfigDict()
  config.model.name = 'logistic_regression'  # Or 'mlp', 'small_cnn'.
  config.model.hidden_units = (64,)  # mlp only.
  config.model.dropout = 0.0

  config.algorithm = ml_collections.ConfigDict()
  config.algorithm.name = 'fedavg'  # fedavgm fedprox fedsgd fedadam fedyogi fedadagrad
  config.algorithm.client_weighting = 'num_examples'  # Or 'uniform'.
  config.algorithm.client_optimizer = 'sgd'
  config.algorithm.client_learning_rate = 0.01
  config.algorithm.client_momentum = 0.0
  # None: the algorithm's default (e.g. SGD 1.0 for fedavg, Adam 0.3 for fedadam:
  # tff_med/algorithms.py ALGORITHMS).
  config.algorithm.server_optimizer = ml_collections.config_dict.placeholder(str)
  config.algorithm.server_learning_rate = ml_collections.config_dict.placeholder(float)
  config.algorithm.server_momentum = ml_collections.config_dict.placeholder(float)
  config.algorithm.proximal_strength = 0.0  # fedprox's mu.
  config.algorithm.clients_per_round = 0  # 0: every hospital, every round.
  # Model-update aggregation: 'mean' (TFF's weighted mean), 'robust' (TFF's adaptive
  # clipping and zeroing), 'median' or 'trimmed_mean' (coordinate-wise, unweighted),
  # 'multi_krum', 'norm_clip' (clip to the round's median norm), 'compression' (TFF's
  # 8-bit quantization), 'secure' (pairwise-masked secure aggregation: the coordinator
  # sees only the sum of the hospitals' updates; the `secure` block below).
  config.algorithm.aggregator = 'mean'
  config.algorithm.trim_fraction = 0.25  # trimmed_mean: share cut from each side.
  config.algorithm.krum_byzantine = 1  # multi_krum: updates assumed hostile (left out).

  # Secure aggregation (algorithm.aggregator='secure'): each update is clipped to
  # [-clip, clip] per coordinate, quantized to 2^quantization_bits levels and masked
  # modulo 2^modulus_bits; the aggregate is within clip / (2^quantization_bits - 1) of
  # the plain weighted mean of the clipped updates, per coordinate and round.
  config.secure = ml_collections.ConfigDict()
  config.secure.clip = 2.0
  config.secure.quantization_bits = 16
  config.secure.modulus_bits = 32

  config.training = ml_collections.ConfigDict()
  config.training.rounds = 15
  config.training.eval_every = 5
  config.training.checkpoint_every = 5
  config.training.on_non_finite = 'warn'  # Or 'error'.
  config.training.stopping = ml_collections.ConfigDict()
  config.training.stopping.metric = 'eval/all/auc'
  config.training.stopping.mode = 'max'
  config.training.stopping.patience = 0  # Rounds without improvement; 0: never stop early.
  config.training.stopping.target = ml_collections.config_dict.placeholder(float)

  # Adversarial hospitals, for robustness studies only: 'none', 'label_flip', or an
  # update attack ('sign_flip' and 'scale' multiply the update by -scale / scale,
  # 'gaussian_noise' replaces it with N(0, noise_std^2) noise).
  config.attack = ml_collections.ConfigDict()
  config.attack.kind = 'none'
  config.attack.hospitals = ()
  config.attack.scale = 10.0
  config.attack.noise_std = 1.0

  # Differential privacy: 'none', 'patient' (DP-SGD inside every hospital: one record
  # is the protected unit) or 'hospital' (TFF's dp_aggregator over whole hospitals).
  # Give the noise directly, or a target epsilon (each hospital's noise is calibrated).
  config.privacy = ml_collections.ConfigDict()
  config.privacy.level = 'none'
  config.privacy.noise_multiplier = ml_collections.config_dict.placeholder(float)
  config.privacy.target_epsilon = ml_collections.config_dict.placeholder(float)
  config.privacy.delta = 1e-3  # Must be < 1 / (smallest hospital's training rows).
  config.privacy.l2_norm_clip = 1.0  # Per-patient gradient norm (patient level).
  config.privacy.max_noise_multiplier = 50.0  # A target needing more noise is refused.
  config.privacy.accountant = 'rdp'  # Per-round epsilon; results report 'rdp' and 'pld'.

  # Remote hospitals (experiments.hospital_worker at each): 'cleveland=host:port,...'.
  # Empty: simulate every hospital in this process. Several may share an address.
  config.deployment = ml_collections.ConfigDict()
  config.deployment.workers = ''
  config.deployment.tls_cert = ''  # The coordinator's certificate, key and the
  config.deployment.tls_key = ''  # consortium CA (experiments.make_certificates);
  config.deployment.tls_ca = ''  # empty: plain gRPC (a trusted network only).
  config.deployment.ready_timeout = 30.0  # Seconds for every worker to answer at start.
  # The round deadline: a hospital whose part of a call has not returned by then is
  # dropped from the round (a crashed worker is dropped at once, its connection broken).
  config.deployment.call_timeout = 300.0
  # A dropped hospital's worker is probed at the start of each later round and rejoins
  # if it answers within this many seconds.
  config.deployment.probe_timeout = 5.0
  # The fewest hospitals a round may have when some drop out; a round that loses more is
  # not applied and the run stops (rerun to resume). Unset: every hospital, every round.
  config.deployment.min_hospitals = ml_collections.config_dict.placeholder(int)
  # Simulation only: hospitals absent in given rounds, to ask what an unreliable site
  # costs, e.g. 'hungary@2-4,va_long_beach@p0.2' (p: a seeded probability per round).
  config.deployment.simulate_dropout = ''
  # The plan the hospitals approved (experiments.plan --out=DIR): the run is checked
  # against it before connecting, naming what differs. Empty: the gates decide alone.
  config.deployment.plan = ''

  config.runtime = ml_collections.ConfigDict()
  # Concurrent calls in the TFF worker: one per core, as `runtime.DEFAULT_CONCURRENCY`
  # (measured best, benchmarks/concurrency.py); <= 0: TFF's default, 4 x cores.
  config.runtime.max_concurrent_computation_calls = os.cpu_count() or 1
  # 'tff': TFF's learning process on its worker. 'fused': every hospital's round
  # compiled by XLA in this process, proved equal to TFF on the FedAvg family (fedavg,
  # fedavgm, fedprox, fedadam, fedyogi, fedadagrad), the mean and order-statistic
  # aggregators, attacks, patient-level DP and dense models
  # (tff_med/learning/fused_support.py); refuses the rest. 'auto': fused where it is proved, tff otherwise (the studies' default;
  # results.json says which ran).
  config.runtime.engine = 'tff'

  if variant == 'smoke':
    config.training.rounds = 2
    config.training.eval_every = 1
    config.training.checkpoint_every = 1
  elif variant:
    raise ValueError(f'unknown variant {variant!r}; valid: smoke')
  return config
