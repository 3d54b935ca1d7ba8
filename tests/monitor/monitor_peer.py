#!/usr/bin/env python3
"""Peer values for sagitta monitor's statistics (tests/monitor/monitor_statistics_test.cpp).

Reads JSON {"pairs": [{"reference": [...], "current": [...]}, ...], "kstwo": [[n, d], ...]} from the
file named by argv[1] and prints JSON {"pairs": [{"ks_d", "ks_p", "psi"}], "kstwo": [sf, ...]}:
scipy.stats.ks_2samp(reference, current, method='asymp') and scipy.stats.kstwo.sf(d, n), and the
population stability index computed with numpy (bins: numpy.quantile deciles of the reference,
duplicates removed, a value v in the bin searchsorted(edges, v, side='left'); shares floored at 1e-4).
Exit code 77 when scipy or numpy is missing.
"""
import json
import sys

try:
    import numpy as np
    from scipy import stats
except ImportError as e:  # the test skips
    print(f"missing Python module: {e}", file=sys.stderr)
    sys.exit(77)

EPSILON = 1e-4


def psi(reference, current):
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10.0))

    def shares(values):
        index = np.searchsorted(edges, values, side="left")
        return np.bincount(index, minlength=len(edges) + 1) / len(values)

    r = np.maximum(shares(reference), EPSILON)
    c = np.maximum(shares(current), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    out = {"scipy": __import__("scipy").__version__, "pairs": [], "kstwo": []}
    for pair in request.get("pairs", []):
        result = stats.ks_2samp(pair["reference"], pair["current"], method="asymp")
        out["pairs"].append({"ks_d": float(result.statistic), "ks_p": float(result.pvalue),
                             "psi": psi(pair["reference"], pair["current"])})
    for n, d in request.get("kstwo", []):
        out["kstwo"].append(float(stats.kstwo.sf(d, int(n))))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
