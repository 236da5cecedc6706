"""Prints the lifetimes 0.11.3 reference numbers recorded in ../cdnow.rs.

Usage (a throwaway venv; PyPI reachable):
    python3 -m venv /tmp/lt
    /tmp/lt/bin/pip install lifetimes==0.11.3 numpy==1.26.4 scipy==1.11.4 pandas==2.1.4
    /tmp/lt/bin/python lifetimes_reference.py

Fits lifetimes' bundled CDNOW summaries (the same rows as
cdnow_customers_summary_with_transactions.csv here) with default settings and prints the
parameters, total log-likelihoods, predictions, P(alive), spend and CLV values the Rust
tests compare against. Nothing here runs in CI.
"""
import warnings

warnings.filterwarnings("ignore")

from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402
from lifetimes.datasets import (  # noqa: E402
    load_cdnow_summary,
    load_cdnow_summary_data_with_monetary_value,
)

d = load_cdnow_summary(index_col=[0])
bgf = BetaGeoFitter().fit(d["frequency"], d["recency"], d["T"])
print("bgnbd params", {k: repr(v) for k, v in bgf.params_.items()})
print("bgnbd standard errors", bgf.standard_errors_.to_dict())
# lifetimes reports the mean LL with time rescaled so max(T) = 1; this is the total LL
# in weeks, the figure in the paper (-9582.4).
log_params = __import__("numpy").log(bgf.params_.values.copy())
ones = __import__("numpy").ones(len(d))
ll = -BetaGeoFitter._negative_log_likelihood(
    log_params, d.frequency.values, d.recency.values, d["T"].values, ones, 0.0
) * len(d)
print("bgnbd log-likelihood", repr(ll))

cases = [(0, 0.0, 38.86), (1, 1.71, 38.86), (2, 30.43, 38.86), (7, 35.14, 38.86), (4, 12.0, 30.0), (26, 35.0, 37.0), (0, 0.0, 0.5), (3, 0.4, 0.5)]
for t in [1, 10, 39, 52, 104, 1000]:
    for x, tx, T in cases:
        e = bgf.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T)
        print("expected", t, x, tx, T, repr(float(e)))
for x, tx, T in cases:
    print("p_alive", x, tx, T, repr(float(bgf.conditional_probability_alive(x, tx, T)[0])))
for t in [1, 10, 39, 78]:
    print("expected_new", t, repr(float(bgf.expected_number_of_purchases_up_to_time(t))))

pen = BetaGeoFitter(penalizer_coef=0.01).fit(d["frequency"], d["recency"], d["T"])
print("bgnbd penalizer 0.01", {k: repr(v) for k, v in pen.params_.items()})

m = load_cdnow_summary_data_with_monetary_value()
r = m[m.frequency > 0]
ggf = GammaGammaFitter().fit(r.frequency, r.monetary_value)
print("gamma-gamma params", {k: repr(v) for k, v in ggf.params_.items()}, "customers", len(r))
print("gamma-gamma log-likelihood", repr(-ggf._negative_log_likelihood_ * len(r)))
for x, mv in [(1, 11.77), (2, 22.35), (6, 50.0), (10, 5.0)]:
    print("spend", x, mv, repr(float(ggf.conditional_expected_average_profit(x, mv))))
ggp = GammaGammaFitter(penalizer_coef=0.01).fit(r.frequency, r.monetary_value)
print("gamma-gamma penalizer 0.01", {k: repr(v) for k, v in ggp.params_.items()})

sub = r.head(5)
clv = ggf.customer_lifetime_value(
    bgf, sub.frequency, sub.recency, sub["T"], sub.monetary_value, time=12, discount_rate=0.01, freq="W"
)
for (cid, row), value in zip(sub.iterrows(), clv.values):
    print("clv", cid, int(row.frequency), row.recency, row["T"], row.monetary_value, repr(float(value)))
