"""The peers of `npm run bench`'s model-quality section: the same train and test files through
LightGBM (native categoricals and one-hot), scikit-learn's HistGradientBoosting, a tuned
scikit-learn logistic regression, scikit-learn's MLP(32, 16) and XGBoost.

    python3 bench/peers.py --train T.csv --test S.csv --label churned --positive yes \
        [--id customer_id] [--peers lightgbm,hgb,...] [--threads 1] [--predictions]
    python3 bench/peers.py speed --table T.csv --rounds 100
    python3 bench/peers.py nbo --train T.csv --test S.csv --offers 8 [--threads 1]

Prints one JSON object: per peer its test AUC, log loss, positives captured in the top decile,
expected calibration error and fit seconds (and with --predictions its test probabilities), or
the reason it was skipped (a library not installed). Every peer chooses its own rounds or
regularisation by cross-validation (or early stopping) on the training file only; the test file is
only scored.

`nbo` fits next-best-offer peers on offer history (columns: the features, `offer` the index of the
offer made, `accepted` 0/1, `month`) and prints, per peer, the offer its policy sends each test row
(the one with the highest predicted acceptance) and the fit seconds: `lightgbm-heads`, one LightGBM
classifier per offer with its defaults, fitted on every row where that offer was made (the direct
method); `lightgbm-heads-tuned`, the same with learning rate 0.05 and early stopping on the last
training month; `lightgbm-pooled`, one LightGBM model with the offer as a categorical input.

`speed` times LightGBM on one thread on a numeric table whose first column `y` is the label: the
seconds to build its dataset and to train the rounds, with LightGBM's defaults for the tree shape
(31 leaves, 20 rows per leaf, L2 1, 255 bins, learning rate 0.1) and no subsampling.
"""
import argparse
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MISSING = ["", "na", "n/a", "nan", "null", "none", "?", "-", "NA", "N/A", "NaN", "NULL", "None"]


def load(path, label, positive, id_column):
    frame = pd.read_csv(path, keep_default_na=False, na_values=MISSING, dtype=str)
    y = (frame[label].str.strip() == positive).astype(int).to_numpy()
    features = frame.drop(columns=[c for c in [label, id_column] if c and c in frame.columns])
    return features, y


def typed(train, test):
    """Numbers where every value parses, categories (from the training rows) elsewhere."""
    train = train.copy()
    test = test.copy()
    categorical = []
    for c in train.columns:
        values = pd.to_numeric(train[c], errors="coerce")
        if values.notna().sum() == train[c].notna().sum():
            train[c] = values
            test[c] = pd.to_numeric(test[c], errors="coerce")
        else:
            categories = sorted(train[c].dropna().unique())
            train[c] = pd.Categorical(train[c], categories=categories)
            test[c] = pd.Categorical(test[c], categories=categories)
            categorical.append(c)
    return train, test, categorical


def one_hot(train, test, categorical):
    both = pd.get_dummies(pd.concat([train, test], keys=["train", "test"]), columns=categorical, dummy_na=False, dtype=float)
    return both.xs("train").astype(float), both.xs("test").astype(float)


def metrics(y, p, seconds):
    from sklearn.metrics import log_loss, roc_auc_score

    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    k = max(1, int(round(len(y) * 0.1)))
    top = np.argsort(-p, kind="stable")[:k]
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum() for b in range(10) if (bins == b).any()) / len(y)
    return {
        "auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p)),
        "captured_top_decile": int(y[top].sum()),
        "positives": int(y.sum()),
        "ece": float(ece),
        "seconds": round(seconds, 3),
    }


def lightgbm_peer(train, y, test, categorical, threads, native):
    import lightgbm as lgb

    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20, "verbose": -1, "num_threads": threads, "seed": 42}
    if native:
        data = lgb.Dataset(train, y, categorical_feature=categorical or "auto", free_raw_data=False)
        Xtest = test
    else:
        Xtrain, Xtest = one_hot(train, test, categorical)
        data = lgb.Dataset(Xtrain, y, free_raw_data=False)
    cv = lgb.cv(params, data, num_boost_round=2000, nfold=5, stratified=True, seed=42, callbacks=[lgb.early_stopping(50, verbose=False)])
    rounds = len(next(iter(cv.values())))
    model = lgb.train(params, data, num_boost_round=rounds)
    return model.predict(Xtest), {"rounds": rounds}


def hgb_peer(train, y, test, categorical, threads, _native):
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=42)
    model.fit(train, y)
    return model.predict_proba(test)[:, 1], {"iterations": int(model.n_iter_)}


def linear_design(train, test, categorical):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in train.columns if c not in categorical]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )


def logreg_peer(train, y, test, categorical, threads, _native):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    train = train.astype({c: object for c in categorical})
    test = test.astype({c: object for c in categorical})
    model = make_pipeline(linear_design(train, test, categorical), LogisticRegressionCV(Cs=12, cv=5, scoring="roc_auc", max_iter=5000))
    model.fit(train, y)
    return model.predict_proba(test)[:, 1], {"C": float(model[-1].C_[0])}


def mlp_peer(train, y, test, categorical, threads, _native):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    train = train.astype({c: object for c in categorical})
    test = test.astype({c: object for c in categorical})
    model = make_pipeline(linear_design(train, test, categorical), MLPClassifier(hidden_layer_sizes=(32, 16), early_stopping=True, max_iter=500, random_state=42))
    model.fit(train, y)
    return model.predict_proba(test)[:, 1], {"iterations": int(model[-1].n_iter_)}


def xgboost_peer(train, y, test, categorical, threads, _native):
    import xgboost as xgb

    Xtrain, Xtest = one_hot(train, test, categorical)
    data = xgb.DMatrix(Xtrain, y)
    params = {"objective": "binary:logistic", "eta": 0.05, "max_depth": 6, "tree_method": "hist", "nthread": threads, "eval_metric": "logloss", "seed": 42}
    cv = xgb.cv(params, data, num_boost_round=2000, nfold=5, stratified=True, seed=42, early_stopping_rounds=50)
    rounds = len(cv)
    model = xgb.train(params, data, num_boost_round=rounds)
    return model.predict(xgb.DMatrix(Xtest)), {"rounds": rounds}


PEERS = {
    "lightgbm": (lightgbm_peer, True, "lightgbm"),
    "lightgbm-onehot": (lightgbm_peer, False, "lightgbm"),
    "hgb": (hgb_peer, True, "sklearn"),
    "logreg": (logreg_peer, True, "sklearn"),
    "mlp": (mlp_peer, True, "sklearn"),
    "xgboost": (xgboost_peer, False, "xgboost"),
}


def speed(argv):
    import lightgbm as lgb

    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.table)
    y = frame.pop("y")
    params = dict(objective="binary", learning_rate=0.1, num_leaves=31, max_depth=8, min_data_in_leaf=20, min_sum_hessian_in_leaf=1e-3,
                  lambda_l2=1, max_bin=255, num_threads=1, verbose=-1, bagging_fraction=1, feature_fraction=1)
    data = lgb.Dataset(frame, y)
    started = time.perf_counter()
    data.construct()
    construct = time.perf_counter() - started
    started = time.perf_counter()
    lgb.train(params, data, num_boost_round=args.rounds)
    print(json.dumps({"train_s": time.perf_counter() - started, "construct_s": construct}))


def nbo(argv):
    import lightgbm as lgb

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--offers", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    train = pd.read_csv(args.train, keep_default_na=True)
    test = pd.read_csv(args.test, keep_default_na=True)
    features = [c for c in test.columns]
    K = args.offers
    X, a, r, month = train[features].to_numpy(float), train["offer"].to_numpy(), train["accepted"].to_numpy(), train["month"].to_numpy()
    Xt = test[features].to_numpy(float)
    out = {}

    started = time.perf_counter()
    Q = np.zeros((len(Xt), K))
    for k in range(K):
        rows = a == k
        model = lgb.LGBMClassifier(verbose=-1, n_jobs=args.threads, random_state=42)
        model.fit(X[rows], r[rows])
        Q[:, k] = model.predict_proba(Xt)[:, 1]
    out["lightgbm-heads"] = {"policy": Q.argmax(1).tolist(), "seconds": time.perf_counter() - started}

    started = time.perf_counter()
    last = month.max()
    Q = np.zeros((len(Xt), K))
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20, "verbose": -1, "num_threads": args.threads, "seed": 42}
    rounds = []
    for k in range(K):
        fit, check = (a == k) & (month < last), (a == k) & (month == last)
        booster = lgb.train(params, lgb.Dataset(X[fit], r[fit]), num_boost_round=2000, valid_sets=[lgb.Dataset(X[check], r[check])], callbacks=[lgb.early_stopping(50, verbose=False)])
        rounds.append(booster.best_iteration)
        final = lgb.train(params, lgb.Dataset(X[a == k], r[a == k]), num_boost_round=max(1, booster.best_iteration))
        Q[:, k] = final.predict(Xt)
    out["lightgbm-heads-tuned"] = {"policy": Q.argmax(1).tolist(), "seconds": time.perf_counter() - started, "rounds": rounds}

    started = time.perf_counter()
    offer_type = pd.CategoricalDtype(categories=list(range(K)))
    frame = pd.DataFrame(X, columns=features).assign(offer=pd.Series(a).astype(offer_type))
    model = lgb.LGBMClassifier(verbose=-1, n_jobs=args.threads, random_state=42)
    model.fit(frame, r)
    Q = np.zeros((len(Xt), K))
    for k in range(K):
        Q[:, k] = model.predict_proba(pd.DataFrame(Xt, columns=features).assign(offer=pd.Series(np.full(len(Xt), k)).astype(offer_type)))[:, 1]
    out["lightgbm-pooled"] = {"policy": Q.argmax(1).tolist(), "seconds": time.perf_counter() - started}
    print(json.dumps(out))


def fit_predict(argv):
    """A whole command as a user would write it: read the CSV, fit with the library's defaults
    (all cores), predict the rows, write the probabilities out."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--positive", required=True)
    parser.add_argument("--id", default=None)
    parser.add_argument("--model", choices=["lightgbm", "hgb"], required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.table)
    y = (frame.pop(args.label).astype(str) == args.positive).astype(int)
    if args.id and args.id in frame:
        frame = frame.drop(columns=[args.id])
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype("category")
    if args.model == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(verbose=-1, random_state=42)
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=42)
    model.fit(frame, y)
    np.savetxt(args.out, model.predict_proba(frame)[:, 1], fmt="%.6f")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "fit-predict":
        fit_predict(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "speed":
        speed(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "nbo":
        nbo(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--positive", required=True)
    parser.add_argument("--id", default=None)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--predictions", action="store_true")
    args = parser.parse_args()
    train, y = load(args.train, args.label, args.positive, args.id)
    test, ytest = load(args.test, args.label, args.positive, args.id)
    train, test, categorical = typed(train, test)
    out = {}
    for name in args.peers.split(","):
        fit, native, module = PEERS[name]
        try:
            __import__(module)
        except ImportError:
            out[name] = {"skipped": f"{module} is not installed for {sys.executable}"}
            continue
        started = time.perf_counter()
        p, details = fit(train, y, test, categorical, args.threads, native)
        out[name] = {**metrics(ytest, p, time.perf_counter() - started), **details}
        if args.predictions:
            out[name]["predictions"] = [float(v) for v in p]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
