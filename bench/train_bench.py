"""Training benchmark: our pipeline beside the seed project's MultinomialNB, the model before the lexicon, the previous
default (lexicon, no negation counterfactuals) and a plain TF-IDF + LR, same run.

    .venv/bin/python -m bench.train_bench [--repeat N]

Prints one table (fit seconds, holdout macro-F1, accuracy, behaviour-suite pass rate overall and its weakest
capability) on the de-duplicated frozen holdout of the built-in corpus and the suite of ``model.behaviour``, then the
pass rate of every capability. Goals: our training under 60 s on 2 cores with macro-F1 >= 0.76; the suite's goals
are 90% overall and 80% per capability. Not a test; nothing asserts on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from model import behaviour
from model.data import split
from model.settings import DataSettings, ModelSettings
from model.train import fit


def _baseline_nb() -> Pipeline:
    """The seed project's model: bag of words + MultinomialNB."""
    return Pipeline([("bow", CountVectorizer()), ("clf", MultinomialNB())])


def _plain_lr() -> Pipeline:
    """A plain TF-IDF (word unigrams) + LogisticRegression."""
    return Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=1000))])


def main(argv: list[str] | None = None) -> None:
    """Run each contender ``--repeat`` times and print the best fit time and its scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fits per contender (best time is reported)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = split(DataSettings())
    load_s = time.perf_counter() - started
    texts, labels = data.holdout["text"].tolist(), data.holdout["label"].tolist()
    settings = ModelSettings()
    before = ModelSettings(lexicon=False, negation_counterfactuals=0.0, confidence_power=1.0, max_iter=30)
    lexicon_only = ModelSettings(negation_counterfactuals=0.0, confidence_power=1.0, max_iter=30)

    contenders: list[tuple[str, Callable[[], Pipeline]]] = [
        (f"kube-sentiment ({settings.classifier}, TF-IDF + lexicon + cf.)", lambda: fit(settings, data.train)),
        ("baseline: seed MultinomialNB (bag of words)",
         lambda: _baseline_nb().fit(data.train["text"], data.train["label"])),
        ("before: word+char TF-IDF, no lexicon", lambda: fit(before, data.train)),
        ("previous: + lexicon, no counterfactuals", lambda: fit(lexicon_only, data.train)),
        ("reference: plain TF-IDF + LogisticRegression",
         lambda: _plain_lr().fit(data.train["text"], data.train["label"])),
    ]
    rows = []
    suites = []
    for name, build in contenders:
        best, model = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            model = build()
            best = min(best, time.perf_counter() - t0)
        assert model is not None, "--repeat must be at least 1"
        predicted = model.predict(texts)
        suite = behaviour.run(model.predict_proba, model.classes_)
        suites.append(suite)
        weakest = min(suite.pass_rates, key=suite.pass_rates.__getitem__)
        rows.append((name, best, f1_score(labels, predicted, average="macro"), accuracy_score(labels, predicted),
                     suite.overall, f"{weakest} {suite.pass_rates[weakest]:.0%}"))

    print(f"\nTraining benchmark — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, python {platform.python_version()}")
    print(f"corpus: {data.stats['rows_read']} rows read, {data.stats['rows_clean']} after cleaning/de-duplication, "
          f"{len(data.train)} train / {len(texts)} holdout (loaded in {load_s:.1f}s)\n")
    print(f"| {'model':<52} | {'fit s':>6} | {'macro-F1':>8} | {'accuracy':>8} | {'behaviour':>9} | weakest |")
    print(f"|{'-' * 54}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 11}|---|")
    for name, seconds, f1, acc, overall, weakest in rows:
        print(f"| {name:<52} | {seconds:6.1f} | {f1:8.4f} | {acc:8.4f} | {overall:9.1%} | {weakest} |")
    print(f"\n| capability | {' | '.join(str(i + 1) for i in range(len(rows)))} |")
    print(f"|---|{'---|' * len(rows)}")
    for capability in behaviour.CAPABILITIES:
        print(f"| {capability} | {' | '.join(f'{s.pass_rates[capability]:.0%}' for s in suites)} |")
    ours, base = rows[0], rows[1]
    print(f"\nmacro-F1 {ours[2]:.4f} vs baseline {base[2]:.4f} ({ours[2] - base[2]:+.4f}); "
          f"training {ours[1]:.1f}s (goal < 60 s), macro-F1 goal >= 0.76; behaviour {ours[4]:.1%} "
          f"(goal 90%, every capability 80%)")


if __name__ == "__main__":
    main()
