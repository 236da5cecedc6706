"""Fit BG/NBD with Python lifetimes: the peer our benchmark harness compares mkt-lifetimes to.

Usage:
    python3 -m venv /tmp/lt
    /tmp/lt/bin/pip install lifetimes==0.11.3 numpy==1.26.4 scipy==1.11.4 pandas==2.1.4
    /tmp/lt/bin/python lifetimes_peer.py customers.csv [--penalizer 0.0]

customers.csv has a header row and the columns `frequency,recency,T` (x, t_x, T in one
time unit, e.g. weeks; other columns are ignored). Prints one JSON object on stdout:

    {"params": {"r": ..., "alpha": ..., "a": ..., "b": ...}, "fit_seconds": ...,
     "customers": ..., "log_likelihood": ...}

`fit_seconds` times `BetaGeoFitter.fit` only (not reading the CSV); `log_likelihood` is
the total at the fitted parameters in the input's time unit (lifetimes itself reports a
per-customer value with time rescaled). Exit status 1 with a message on stderr if
lifetimes does not converge, 2 if it rejects the input; stdout then stays empty
(lifetimes' own diagnostics are sent to stderr).
"""

import argparse
import contextlib
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifetimes import BetaGeoFitter  # noqa: E402
from lifetimes.utils import ConvergenceError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="CSV with frequency,recency,T columns")
    parser.add_argument("--penalizer", type=float, default=0.0, help="lifetimes penalizer_coef")
    args = parser.parse_args()

    data = pd.read_csv(args.csv, usecols=["frequency", "recency", "T"])
    frequency = data["frequency"].to_numpy()
    recency = data["recency"].to_numpy(dtype=float)
    age = data["T"].to_numpy(dtype=float)

    fitter = BetaGeoFitter(penalizer_coef=args.penalizer)
    started = time.perf_counter()
    try:
        # lifetimes prints the optimiser's state to stdout when it fails; keep stdout JSON.
        with contextlib.redirect_stdout(sys.stderr):
            fitter.fit(frequency, recency, age)
    except ConvergenceError as error:
        print(f"lifetimes did not converge: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"lifetimes rejected the input: {error}", file=sys.stderr)
        return 2
    fit_seconds = time.perf_counter() - started

    params = {name: float(fitter.params_[name]) for name in ["r", "alpha", "a", "b"]}
    log_likelihood = -BetaGeoFitter._negative_log_likelihood(
        np.log([params["r"], params["alpha"], params["a"], params["b"]]),
        frequency.astype(int),
        recency,
        age,
        np.ones(len(data)),
        0.0,
    ) * len(data)
    print(
        json.dumps(
            {
                "params": params,
                "fit_seconds": fit_seconds,
                "customers": int(len(data)),
                "log_likelihood": float(log_likelihood),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
