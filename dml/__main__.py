"""``python -m dml``: a PLR fit on simulated data on the local backend; prints the summary and the timing."""

from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dml", description=__doc__)
    parser.add_argument("--n-obs", type=int, default=1000, help="simulated observations (default 1000)")
    parser.add_argument("--n-rep", type=int, default=4, help="repetitions of the 5-fold cross-fitting (default 4)")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: CPU count)")
    args = parser.parse_args(argv)

    from doubleml.plm.datasets import make_plr_CCDDHNR2018
    from sklearn.ensemble import RandomForestRegressor

    import dml
    import lambdamap

    np.random.seed(3141)
    df = make_plr_CCDDHNR2018(n_obs=args.n_obs, dim_x=20, alpha=0.5, return_type="DataFrame")
    forest = RandomForestRegressor(n_estimators=100, max_depth=5, min_samples_leaf=2, random_state=0)
    with lambdamap.local_executor(workers=args.workers, progress=False) as pwex:
        res = dml.fit_plr(df, y="y", d="d", ml_l=forest, ml_m=forest, n_folds=5, n_rep=args.n_rep, seed=42,
                          executor=pwex)
    print(f"PLR on {args.n_obs} simulated observations (true effect 0.5), random forests, 5 folds x {args.n_rep}")
    print(res.summary.to_string())
    s = res.stats
    print(f"{s.tasks} nuisance fits in {s.invocations} invocations on {s.workers} local workers: "
          f"{s.wall_seconds:.2f} s wall, {s.task_seconds:.2f} s of fitting")


if __name__ == "__main__":
    main()
