"""The drift signals of one group (model version and track) against its reference profile.

Every signal pairs an effect size (compared with warn / drift thresholds) with a p-value (corrected over the
group's signals). A signal says ``drift`` or ``warn`` only when its effect reaches the threshold *and* its
corrected p-value is below ``alpha``: a large window cannot alarm on a negligible shift, a small one cannot alarm
on noise. Too few records (or texts) give ``insufficient_data``.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from control.drift import stats
from control.drift.reference import Reference
from control.drift.settings import DriftSettings, Thresholds
from model.profile import oov_rates

log = logging.getLogger(__name__)

OK, WARN, DRIFT, INSUFFICIENT, ERROR = "ok", "warn", "drift", "insufficient_data", "error"
_WORD = re.compile(r"(?u)\b\w\w+\b")
VERDICT_RANK = {INSUFFICIENT: -1, OK: 0, WARN: 1, DRIFT: 2}


@dataclass
class Signal:
    """One signal of one group (the JSON report's ``groups[].signals[]``)."""

    name: str
    family: str
    statistic: str
    value: float | None
    threshold_warn: float
    threshold_drift: float
    test: str
    p_value: float | None
    n: int
    p_value_adjusted: float | None = None
    verdict: str = INSUFFICIENT
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class GroupResult:
    """Signals and plot data of one group."""

    model_version: str
    track: str
    n: int
    verdict: str
    signals: list[Signal]
    reference: dict[str, Any]
    domain: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _verdict(effect: float | None, p_adj: float | None, warn: float, drift: float, alpha: float) -> str:
    """``drift`` / ``warn`` when the effect reaches the threshold and the corrected p-value is below alpha."""
    if effect is None or p_adj is None:
        return INSUFFICIENT
    if p_adj < alpha and effect >= drift:
        return DRIFT
    if p_adj < alpha and effect >= warn:
        return WARN
    return OK


def _class_counts(labels: pa.ChunkedArray | pa.Array, classes: list[str]) -> tuple[np.ndarray, int]:
    """Counts of each class in ``labels`` and the count of labels outside ``classes``."""
    counts = pc.value_counts(labels)
    found = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    other = sum(v for k, v in found.items() if k not in classes)
    return np.array([found.get(c, 0) for c in classes], dtype=np.float64), int(other)


def prediction_signals(table: pa.Table, ref: Reference, t: Thresholds) -> tuple[list[Signal], dict[str, Any]]:
    """Class shares (PSI + chi-square), confidence (PSI + KS), text length (KS)."""
    profile = ref.profile
    n = table.num_rows
    classes = list(profile["classes"])
    win_counts, other = _class_counts(table.column("label"), classes)
    ref_shares = np.array([profile["predicted_class_shares"][c] for c in classes])
    ref_counts = ref_shares * profile["n"]
    chi2, p_cls = stats.chi2_homogeneity(np.append(ref_counts, 0.0), np.append(win_counts, other))
    share_psi = stats.psi(np.append(ref_counts, 0.0), np.append(win_counts, other))
    win_shares = win_counts / max(n, 1)
    signals = [
        Signal("class_shares_psi", "predicted_class", "psi", share_psi, t.psi_warn, t.psi_drift,
               "chi2_homogeneity", p_cls, n,
               details={"chi2": chi2, "reference": dict(zip(classes, ref_shares.round(4).tolist(), strict=True)),
                        "window": dict(zip(classes, win_shares.round(4).tolist(), strict=True)),
                        "unknown_labels": other}),
    ]
    confidence = pc.fill_null(table.column("confidence"), np.nan).to_numpy()
    confidence = confidence[np.isfinite(confidence)]
    bins = profile["confidence"]["bins"]
    win_conf_counts = stats.histogram(confidence, bins)
    ref_conf_counts = np.asarray(profile["confidence"]["counts"], float)
    conf_chi2, p_conf_bins = stats.chi2_homogeneity(ref_conf_counts, win_conf_counts)
    ref_conf_sample = np.asarray(profile["confidence"]["sample"], float)
    conf_d, p_conf_ks = stats.ks(ref_conf_sample, confidence) if len(confidence) else (None, None)
    signals += [
        Signal("confidence_psi", "confidence", "psi",
               stats.psi(ref_conf_counts, win_conf_counts) if len(confidence) else None,
               t.psi_warn, t.psi_drift, "chi2_homogeneity", p_conf_bins if len(confidence) else None,
               len(confidence), details={"chi2": conf_chi2, "window_mean": float(confidence.mean())
                                         if len(confidence) else None,
                                         "reference_mean": profile["confidence"].get("mean")}),
        Signal("confidence_ks", "confidence", "ks_distance", conf_d, t.ks_warn, t.ks_drift, "ks_2samp", p_conf_ks,
               len(confidence)),
    ]
    lengths = pc.fill_null(table.column("text_length"), -1).to_numpy()
    lengths = lengths[lengths >= 0].astype(np.float64)
    ref_len = np.asarray(profile["text_length"]["sample"], float)
    len_d, p_len = stats.ks(ref_len, lengths) if len(lengths) else (None, None)
    signals.append(Signal("text_length_ks", "text_length", "ks_distance", len_d, t.ks_warn, t.ks_drift, "ks_2samp",
                          p_len, len(lengths), details={"window_mean": float(lengths.mean()) if len(lengths) else None,
                                                        "reference_mean": profile["text_length"].get("mean")}))
    plots = {"classes": classes, "ref_shares": ref_shares.tolist(), "win_shares": win_shares.tolist(),
             "conf_bins": bins, "ref_conf": ref_conf_counts.tolist(), "win_conf": win_conf_counts.tolist(),
             "ref_len": ref_len.tolist(), "win_len": lengths[:20000].tolist()}
    return signals, plots


def text_signals(texts: list[str], ref: Reference, t: Thresholds) -> tuple[list[Signal], dict[str, Any]]:
    """Out-of-vocabulary rate (mean increase) and share of texts with no known term (increase)."""
    oov = ref.profile["oov"]
    rates = oov_rates(texts, ref.vocabulary) if texts else np.array([])
    ref_rates = np.asarray(oov["sample"], float)
    n = len(rates)
    mean_increase = float(rates.mean() - oov["mean_rate"]) if n else None
    none_known = int((rates >= 1.0).sum())
    share_increase = none_known / n - oov["no_known_term_share"] if n else None
    signals = [
        Signal("oov_rate", "vocabulary", "mean_rate_increase", mean_increase, t.oov_warn, t.oov_drift,
               "mannwhitney_greater", stats.greater(rates, ref_rates) if n else None, n,
               details={"window_mean_rate": float(rates.mean()) if n else None,
                        "reference_mean_rate": oov["mean_rate"], "vocabulary_size": oov["vocabulary_size"]}),
        Signal("no_known_term_share", "vocabulary", "share_increase", share_increase, t.no_known_warn,
               t.no_known_drift, "binomial_greater",
               stats.share_above(none_known, n, oov["no_known_term_share"], ref.profile["n"]) if n else None, n,
               details={"window_share": none_known / n if n else None,
                        "reference_share": oov["no_known_term_share"]}),
    ]
    return signals, {"ref_oov": ref_rates.tolist(), "win_oov": rates.tolist()}


def _ood_terms(ood: list[str], reference: list[str], limit: int = 15) -> list[dict[str, Any]]:
    """Words that characterise the out-of-distribution texts against the reference: smoothed log ratio of the share
    of texts containing each, for words in at least two (and 5%) of the OOD texts."""
    if not ood:
        return []

    def doc_freq(texts: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for text in texts:
            for term in set(_WORD.findall(text.lower())):
                counts[term] = counts.get(term, 0) + 1
        return counts

    in_ood, in_ref = doc_freq(ood), doc_freq(reference)
    floor = max(2, int(0.05 * len(ood)))
    scored = [(np.log((a + 0.5) / (len(ood) + 1)) - np.log((in_ref.get(term, 0) + 0.5) / (len(reference) + 1)),
               term, a) for term, a in in_ood.items() if a >= floor]
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [{"term": term, "weight": round(float(score), 3), "ood_texts": a} for score, term, a in scored[:limit]
            if score > 0]


def domain_signals(texts: list[str], ref: Reference, t: Thresholds, folds: int, seed: int,
                   sample_size: int) -> tuple[list[Signal], dict[str, Any]]:
    """Domain classifier: can a linear model tell reference texts from window texts? Two signals from its
    out-of-fold scores: the cross-validated AUC (the window as a whole) and the share of out-of-distribution texts
    (a partial shift: some of the window). A text is out of distribution when it scores above all but
    ``ood_quantile`` of the reference texts, or has no known term; the reference texts go through the same
    classifier and rule, so their own share is the share expected under no drift, and the window's share is tested
    against it (one-sided Fisher exact test). Also the texts behind that share, the words that characterise them,
    the terms the classifier weighs and the window texts most unlike the reference."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import FeatureUnion

    rng = np.random.default_rng(seed)
    reference = list(ref.profile["reference_texts"])
    if len(reference) > sample_size:
        reference = [reference[i] for i in rng.choice(len(reference), sample_size, replace=False)]
    current = texts[:sample_size]
    n = len(current)
    auc_signal = Signal("domain_classifier_auc", "domain", "auc", None, t.auc_warn, t.auc_drift,
                        "mannwhitney_greater", None, n)
    ood_signal = Signal("ood_share", "domain", "share_increase", None, t.ood_warn, t.ood_drift,
                        "fisher_exact_greater", None, n)
    if n < 2 * folds or len(reference) < 2 * folds:
        return [auc_signal, ood_signal], {}
    corpus = reference + current
    y = np.r_[np.zeros(len(reference)), np.ones(n)]
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 1), min_df=2, sublinear_tf=True, max_features=20000)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=2, sublinear_tf=True, max_features=20000)
    features = FeatureUnion([("word", word), ("char", char)])
    x = features.fit_transform(corpus)
    # strong regularisation: only terms that many window texts share against the reference get weight, so the few
    # texts of a partial shift stand out of the rest of the window (a weak one lets every window text's noise in)
    clf = SGDClassifier(loss="log_loss", alpha=1e-2, max_iter=30, tol=1e-4, class_weight="balanced",
                        random_state=seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a few SGD epochs are enough to rank; convergence is not the point
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
        clf.fit(x, y)
    auc_signal.value = float(roc_auc_score(y, scores))
    auc_signal.p_value = stats.greater(scores[y == 1], scores[y == 0])

    ref_scores, win_scores = scores[: len(reference)], scores[len(reference):]
    threshold = float(np.quantile(ref_scores, 1.0 - t.ood_quantile))
    ref_unknown = oov_rates(reference, ref.vocabulary) >= 1.0
    win_unknown = oov_rates(current, ref.vocabulary) >= 1.0
    ref_flag = (ref_scores > threshold) | ref_unknown
    win_flag = (win_scores > threshold) | win_unknown
    k_win, k_ref = int(win_flag.sum()), int(ref_flag.sum())
    ood_signal.value = round(k_win / n - k_ref / len(reference), 9)  # 0.06 - 0.02 is a threshold, not 0.0399...
    ood_signal.p_value = stats.share_greater(k_win, n, k_ref, len(reference))
    ood_signal.details = {
        "window_share": round(k_win / n, 4), "reference_share": round(k_ref / len(reference), 4),
        "window_ood_texts": k_win, "window_texts": n, "reference_ood_texts": k_ref, "reference_texts": len(reference),
        "score_threshold": round(threshold, 4), "quantile": t.ood_quantile,
        "window_by_reason": {"domain_score": int((win_scores > threshold).sum()),
                             "no_known_term": int(win_unknown.sum())},
    }

    order = np.argsort(win_scores)[::-1]
    ood_order = [i for i in order if win_flag[i]]
    ood_texts = [{"text": current[i][:300], "score": round(float(win_scores[i]), 4),
                  "reason": "no known term" if win_unknown[i] and win_scores[i] <= threshold else "domain score"}
                 for i in ood_order[:20]]
    n_word = len(word.vocabulary_)
    coef = clf.coef_[0][:n_word]
    terms = np.array(word.get_feature_names_out())
    by_coef = np.argsort(coef)
    top_reference = [{"term": str(terms[i]), "weight": round(float(coef[i]), 4)} for i in by_coef[:15] if coef[i] < 0]
    examples = [{"text": current[i][:300], "score": round(float(win_scores[i]), 4)} for i in order[:8]]
    detail = {"reference_texts": len(reference), "window_texts": n, "folds": folds,
              "ood_texts": ood_texts, "ood_count": k_win,
              "top_terms_window": _ood_terms([current[i] for i in ood_order], reference),
              "top_terms_reference": top_reference, "examples": examples,
              "score_threshold": threshold, "ref_scores": ref_scores.round(4).tolist(),
              "win_scores": win_scores.round(4).tolist()}
    return [auc_signal, ood_signal], detail


def evaluate_group(table: pa.Table, ref: Reference, settings: DriftSettings, model_version: str,
                   track: str) -> GroupResult:
    """All signals of one group, corrected and judged."""
    t = settings.thresholds
    n = table.num_rows
    reference = {"source": ref.source, "run_id": ref.run_id, "profile_n": ref.profile["n"]}
    if n < settings.min_samples:
        return GroupResult(model_version, track, n, INSUFFICIENT, [], reference)
    signals, plots = prediction_signals(table, ref, t)
    rng = np.random.default_rng(settings.seed)
    text_col = table.column("text")
    has_text = pc.invert(pc.is_null(text_col)).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(has_text)
    take = min(len(candidates), settings.text_sample_size)
    chosen = rng.choice(candidates, take, replace=False) if take else np.array([], dtype=np.int64)
    texts = text_col.take(pa.array(chosen)).to_pylist() if take else []
    text_sigs, text_plots = text_signals(texts, ref, t)
    domain, domain_detail = domain_signals(texts, ref, t, settings.cv_folds, settings.seed,
                                           settings.domain_sample_size)
    signals += [*text_sigs, *domain]
    score_plots = {key: domain_detail.pop(key) for key in ("ref_scores", "win_scores", "score_threshold")
                   if key in domain_detail}
    for s in signals:
        if s.n < settings.min_samples:
            s.value, s.p_value = s.value, None
    adjusted = stats.adjust([s.p_value for s in signals], t.correction)
    for s, p_adj in zip(signals, adjusted, strict=True):
        s.p_value_adjusted = p_adj
        s.verdict = _verdict(s.value, p_adj, s.threshold_warn, s.threshold_drift, t.alpha)
    judged = [s.verdict for s in signals if s.verdict != INSUFFICIENT]
    verdict = max(judged, key=VERDICT_RANK.__getitem__) if judged else INSUFFICIENT
    return GroupResult(model_version, track, n, verdict, signals, reference, domain_detail,
                       plots | text_plots | score_plots)
