"""Measures the scikit-learn anchors that docs/study.md sets beside the study's numbers.

    python docs/measure_anchors.py            # rewrites docs/anchors.csv (a few minutes on 2 cores)

On the very train/test splits nnrun's suite uses (loaded through nnrun's own loaders):
- MNIST-1D: logistic regression, and MLPClassifier with two hidden layers of 100 ReLU
  units and Adam (scikit-learn's defaults otherwise), as in the MNIST-1D paper;
- digits: MLPClassifier with the suite's network and budget (64-32-10, logistic hidden
  units, softmax output, plain SGD with minibatches of 64, mean loss, no L2 penalty,
  100 epochs without early stopping) at the learning rate the study tuned for ce-softmax.
Each MLP is trained under several ``random_state`` seeds; the CSV keeps each seed's test
accuracy so docs/make_study_doc.py can report the median and range.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pandas as pd

from nnrun.config import load
from nnrun.executor import load_data

DOCS = Path(__file__).resolve().parent
SUITE = DOCS.parent / "nnrun" / "suite"
SEEDS = range(5)


def _split(problem: str):
    data = load_data(load(SUITE / f"{problem}.yaml"))
    return data.X, data.labels, data.X_test, data.labels_test


def measure(study_csv: Path = DOCS / "study.csv") -> pd.DataFrame:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    rows = []
    X, y, Xt, yt = _split("mnist1d")
    logreg = LogisticRegression(max_iter=5000).fit(X, y)
    rows.append({"problem": "mnist1d", "model": "logistic regression", "seed": 0, "test_accuracy": logreg.score(Xt, yt)})
    for seed in SEEDS:
        mlp = MLPClassifier(hidden_layer_sizes=(100, 100), activation="relu", solver="adam", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(X, y)
        rows.append({"problem": "mnist1d", "model": "MLPClassifier 100-100 ReLU, Adam", "seed": seed, "test_accuracy": mlp.score(Xt, yt)})

    study = pd.read_csv(study_csv)
    lr = float(study.loc[(study["problem"] == "suite-digits") & (study["variant"] == "ce-softmax"), "learning_rate"].iloc[0])
    X, y, Xt, yt = _split("digits")
    for seed in SEEDS:
        mlp = MLPClassifier(
            hidden_layer_sizes=(32,), activation="logistic", solver="sgd", learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False,
            batch_size=64, alpha=0.0, max_iter=100, tol=0.0, n_iter_no_change=100, early_stopping=False, random_state=seed,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(X, y)
        rows.append({"problem": "digits", "model": f"MLPClassifier 64-32-10 logistic, SGD lr {lr:g}, batch 64, 100 epochs", "seed": seed, "test_accuracy": mlp.score(Xt, yt)})
    return pd.DataFrame(rows)


def main() -> int:
    frame = measure()
    frame.to_csv(DOCS / "anchors.csv", index=False, lineterminator="\n")
    print(frame.groupby(["problem", "model"])["test_accuracy"].describe().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
