"""Two records of the same configurations, paired: does a training setting change what they are worth?

`record_curves.py --set KEY=VALUE` trains the same Sobol configurations as a record without it
(same data, design seed and thread count, so a shared training seed is the same training but for
that setting). This pairs every configuration both records hold and prints, per configuration and
shared training seed, the final mAP50-95 (and fitness) in each, their difference, and the paired
mean difference with a 95% interval (t) and the wins:

    python benchmarks/compare_records.py benchmarks/records/small.npz \\
        benchmarks/records/small_wb01.npz
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the record without the setting")
    parser.add_argument("b", help="the record with it")
    parser.add_argument("--fitness", default="map50_95", help="what to compare (default: %(default)s)")
    args = parser.parse_args()

    from scipy import stats

    from automl.execution.record import load_record

    a, b = load_record(args.a), load_record(args.b)
    if a.keys != b.keys:
        raise SystemExit(f"the records search different keys: {a.keys} and {b.keys}")
    seeds = [s for s in a.seeds if s in b.seeds]
    fa, fb = a.final(args.fitness), b.final(args.fitness)
    print(f"A: {args.a} ({a.meta.get('set') or 'as recorded'}); B: {args.b} ({b.meta.get('set')})")
    print(f"final {args.fitness} at epoch {a.epochs}, training seeds {seeds}")
    print(f"{'#':>3}  " + "  ".join(f"{k:>9}" for k in a.keys) + "        A        B     B-A")
    diffs = []
    for j, params in enumerate(b.params):
        match = np.flatnonzero(np.all(np.isclose(a.params, params, rtol=1e-9), axis=1))
        if not len(match):
            continue
        i = int(match[0])
        for s in seeds:
            va, vb = fa[i, a.seeds.index(s)], fb[j, b.seeds.index(s)]
            diffs.append(vb - va)
            print(f"{i:>3}  " + "  ".join(f"{v:>9.4g}" for v in params)
                  + f"  {va:7.4f}  {vb:7.4f}  {vb - va:+.4f}")
    d = np.array(diffs)
    if len(d) < 2:
        raise SystemExit("fewer than two shared trainings")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    print(f"\n{len(d)} pairs: mean B-A {d.mean():+.4f} (95% CI {d.mean() - half:+.4f} .. "
          f"{d.mean() + half:+.4f}), median {np.median(d):+.4f}, B higher in {int((d > 0).sum())}, "
          f"lower in {int((d < 0).sum())}; Wilcoxon p {stats.wilcoxon(d).pvalue:.3g}")


if __name__ == "__main__":
    main()
