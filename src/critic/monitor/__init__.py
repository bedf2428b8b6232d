"""Drift: how captured live traffic differs from the data a bundle was trained on.

``critic monitor CAPTURE_DIR --baseline BUNDLE`` reads the JSON lines the endpoint captured
(:mod:`critic.serving.sidecar.capture`, SageMaker's data-capture shape) and compares them, over the
whole capture and hour by hour, with a baseline: the bundle's own held-out *validation*
split, recomputed from the data settings its config.json records (source, split fractions and
seed) and scored by the bundle. The validation split, because it is data the model never
trained on and the test split stays free to play live traffic in tests. Nothing is stored in
the bundle, so every bundle ever trained can be a baseline; the cost is reading its data
source again (a few seconds for the embedded reviews).

What is compared, and when it counts as drift (:class:`DriftThresholds`):

* the score: the model's probability of "positive" on each review -- the population stability
  index (PSI, over the baseline's deciles; above 0.2 is the usual "significant shift") and a
  two-sample Kolmogorov-Smirnov test (scipy.stats.ks_2samp), which flags only when the shift
  is both significant and large (a big enough sample makes any shift significant);
* the share of unknown words: tokens outside the bundle's vocabulary (the n-gram model's
  single words; an ensemble's members' together), as a rise over the baseline's share;
* review length in words: PSI over the baseline's deciles;
* the label share: how far the share of "positive" answers moved.

A window (an hour) with fewer than ``min_reviews`` reviews is reported but never flagged: a
handful of reviews says little. The exit status of ``critic monitor`` follows the whole
capture, so a scheduler can run it on the latest hours.

With ``--ground-truth``, :mod:`critic.monitor.quality` also joins the captured answers with
their true labels (:mod:`critic.monitor.ground_truth`: votes in a feedback file, or SageMaker
Model Monitor's ground-truth records) and reports accuracy and calibration against the
bundle's validation figures, per variant and hour by hour.
"""
