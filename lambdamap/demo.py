"""The main job of the README's first set-up command: a map and a dml fit on the embedded local backend.

Run with ``python -m lambdamap.demo``.
"""

from __future__ import annotations

import time


def main() -> None:
    import lambdamap

    with lambdamap.default_executor() as pwex:
        print(f"lambdamap {lambdamap.__version__}: {pwex!r}")
        start = time.perf_counter()
        futures = pwex.map(lambda x: x * x, range(1000))
        results = lambdamap.get_all_results(futures)
        print(f"map of 1,000 calls: sum of squares = {sum(results)} in {time.perf_counter() - start:.3f} s")

        try:
            import doubleml  # noqa: F401 - only to tell whether the dml extra is installed
            import sklearn  # noqa: F401
        except ImportError:
            print("dml example skipped: install the dml extra (pip install '.[dml]')")
            return
        import numpy as np
        from doubleml.plm.datasets import make_plr_CCDDHNR2018
        from sklearn.ensemble import RandomForestRegressor

        import dml

        np.random.seed(0)  # DoubleML's data generator draws from numpy's global state
        data = make_plr_CCDDHNR2018(n_obs=500, dim_x=10, alpha=0.5, return_type="DataFrame")
        learner = RandomForestRegressor(n_estimators=50, max_depth=5, random_state=0)
        start = time.perf_counter()
        res = dml.fit_plr(data, y="y", d="d", ml_l=learner, ml_m=learner, n_folds=5, n_rep=2, seed=42,
                          executor=pwex)
        print(f"\ndml.fit_plr (true theta 0.5), {time.perf_counter() - start:.2f} s:")
        print(res.summary.to_string())
        print(res.stats)


if __name__ == "__main__":
    main()
