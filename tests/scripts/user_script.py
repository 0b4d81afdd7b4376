"""A user's script, run as ``python user_script.py BACKEND [guard|noguard]`` by tests/scripts/test_user_scripts.py.

It prints one section per check, ``=== name``, then what the check saw; the test reads them.
"""

import sys

import user_helpers

import lambdamap

BACKEND = sys.argv[1]


def in_main(x):
    raise ValueError(f"main failure {x}")  # MARK: main


def outer(k):
    def inner(x):
        raise KeyError(x + k)  # MARK: closure
    return inner


def make_executor():
    if BACKEND == "dask":
        import distributed

        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        return lambdamap.dask_executor(client, progress=False), (client, cluster)
    return lambdamap.default_executor(progress=False), ()


def main():
    pwex, owned = make_executor()
    with pwex:
        print("=== abs")
        print(lambdamap.get_all_results(pwex.map(abs, [-1, -2])))
        cases = {"main": in_main, "module": user_helpers.fails_in_module, "lambda": lambda x: 1 // x,
                 "closure": outer(1)}
        for name, fn in cases.items():
            exc = pwex.submit(fn, 0).exception(timeout=120)
            print(f"=== {name}")
            print(type(exc).__name__)
            print(exc.__cause__.tb)
        if "joblib" in sys.argv:
            import joblib

            from lambdamap.integrations import joblib as _registers_backend  # noqa: F401 - registers "lambdamap"

            with joblib.parallel_config(backend="lambdamap", executor=pwex):
                out = joblib.Parallel(n_jobs=2, batch_size=2)(joblib.delayed(abs)(-i) for i in range(6))
            print("=== joblib")
            print(out)
        if "dml" in sys.argv:
            import numpy as np
            import pandas as pd
            from sklearn.linear_model import LinearRegression

            import dml

            rng = np.random.default_rng(0)
            x = rng.normal(size=(200, 3))
            d = x[:, 0] + rng.normal(size=200)
            y = 0.5 * d + x[:, 1] + rng.normal(size=200)
            df = pd.DataFrame({"y": y, "d": d, "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2]})
            res = dml.fit_plr(df, "y", "d", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=2, seed=1,
                              executor=pwex)
            print("=== dml")
            print(round(float(res.coef[0]), 1))
    for resource in owned:
        resource.close()


if sys.argv[2:3] == ["noguard"]:
    main()
elif __name__ == "__main__":
    main()
