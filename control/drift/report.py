"""The drift report: a JSON document with a stable schema, and a self-contained HTML page with inline plots.

JSON schema ``kube-sentiment.drift-report/v1`` (documented in docs/monitoring.md)::

    schema, run_id, generated_at, window{start,end}, source, environment, verdict, exit_code,
    records, duplicates_dropped, files, settings{min_samples, thresholds{...}},
    groups[]{model_version, track, n, verdict, error, reference{source, run_id, profile_n},
             signals[]{name, family, statistic, value, threshold_warn, threshold_drift, test, p_value,
                       p_value_adjusted, n, verdict, details{}},
             domain_classifier{ood_texts[], top_terms_window[], top_terms_reference[], examples[]},
             next_steps[]},
    next_steps[],
    quality{...}   live quality from feedback (control/quality/report.py), when enabled

``next_steps`` say what to do about a verdict: the run's (top level) and each group's, with the signals that fired.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from control.drift.signals import GroupResult, Signal

SCHEMA = "kube-sentiment.drift-report/v1"
COLOURS = {"ok": "#2e7d32", "warn": "#ef6c00", "drift": "#c62828", "insufficient_data": "#757575",
           "error": "#6a1b9a"}


def group_dict(group: GroupResult) -> dict[str, Any]:
    """The JSON form of one group."""
    return {
        "model_version": group.model_version,
        "track": group.track,
        "n": group.n,
        "verdict": group.verdict,
        "error": group.error,
        "reference": group.reference,
        "signals": [s.as_dict() for s in group.signals],
        "domain_classifier": {k: group.domain.get(k, []) for k in
                              ("ood_texts", "top_terms_window", "top_terms_reference", "examples")},
        "next_steps": group_next_steps(group),
    }


#: What to do about each verdict, in a few lines (the report ends with them; the signals that fired add their own).
NEXT_STEPS: dict[str, list[str]] = {
    "drift": [
        "Read the signals marked drift and the texts and plots under them: they say what changed.",
        "Confirm with labelled data before retraining: live quality from feedback, or label a sample of the window.",
        "To adapt, retrain with recent labelled texts (kube-sentiment train); the gate decides whether the new "
        "version replaces this one. Traffic that the model is not meant to serve is fixed at its source instead.",
    ],
    "warn": [
        "Nothing to roll back: a warning is a shift worth watching, not yet one that hurts.",
        "Compare with the next runs; a warning that persists or grows deserves the look a drift gets.",
    ],
    "ok": ["Nothing to do: the window looks like the data the model was trained and checked on."],
    "insufficient_data": [
        "Too few records to judge: widen the window (--window 7d) or lower --min-samples knowingly.",
        "If traffic is flowing, check that events arrive: kube_sentiment_events_total on the predictor, "
        "ks_ship_events_written_total and ks_ship_journal_pending_bytes on the sidecar.",
    ],
    "error": [
        "A reference could not be loaded (see the error): check that the model version is registered with its "
        "reference_profile.json, or point --reference-dir at its model directory.",
    ],
}


def _signal_steps(signal: Signal) -> str | None:
    """One line about a signal that warns or drifts: what moved and where to look."""
    d = signal.details
    if signal.name == "ood_share":
        return (f"ood_share: {d.get('window_ood_texts')} of {d.get('window_texts')} sampled window texts "
                f"({d.get('window_share', 0):.1%}) are unlike the reference texts (whose own share is "
                f"{d.get('reference_share', 0):.1%}); read them under 'Texts behind the out-of-distribution share'. "
                "A new client, channel or language? If the model should serve such texts, label some and retrain "
                "with them; if not, find where they come from.")
    if signal.name == "domain_classifier_auc":
        return ("domain_classifier_auc: the window as a whole reads differently from the reference; the terms "
                "listed show how. Retrain on recent labelled data when quality confirms it.")
    if signal.name == "class_shares_psi":
        return (f"class_shares_psi: the predicted class mix moved ({d.get('reference')} to {d.get('window')}); "
                "check a labelled sample: a real change of mood, or the model misreading new texts.")
    if signal.family == "confidence":
        return (f"{signal.name}: the model's confidence changed (mean {_fmt(d.get('reference_mean'))} to "
                f"{_fmt(d.get('window_mean'))}); lower confidence on new kinds of text comes before errors.")
    if signal.name == "text_length_ks":
        return (f"text_length_ks: texts are of another length (mean {_fmt(d.get('reference_mean'))} to "
                f"{_fmt(d.get('window_mean'))} characters): a new client or a truncation upstream?")
    if signal.family == "vocabulary":
        return (f"{signal.name}: many words the model does not know; look for a new language, new jargon or an "
                "encoding problem (mojibake) upstream.")
    return None


def group_next_steps(group: GroupResult) -> list[str]:
    """The steps for a group's verdict, plus a line for each signal that warns or drifts."""
    fired = [s for s in group.signals if s.verdict in ("warn", "drift")]
    fired.sort(key=lambda s: s.verdict != "drift")
    lines = [line for s in fired if (line := _signal_steps(s)) is not None]
    return lines + NEXT_STEPS.get(group.verdict, [])


def _clean(value: Any) -> Any:
    """Make a value strict-JSON: NaN and infinities become ``None``, numpy scalars plain numbers."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return _clean(value.item())
    return value


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the report (NaN/inf become null, so it is strict JSON)."""
    path.write_text(json.dumps(_clean(report), indent=2, sort_keys=False))
    return path


def _figure_png(draws: Sequence[tuple[str, Callable[[Any], None]]], width_per_plot: float = 3.6,
                height: float = 2.9) -> str:
    """One PNG with the given plots side by side, as a data URI (one render per group keeps it fast)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_per_plot * len(draws), height), dpi=80)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.2, top=0.88, wspace=0.3)
    for i, (title, draw) in enumerate(draws, start=1):
        ax = fig.add_subplot(1, len(draws), i)
        draw(ax)
        ax.set_title(title, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(group: GroupResult) -> list[tuple[str, str]]:
    """The group's reference-vs-window plots as ``[(signal names, data URI)]``, one per signal (or pair of signals
    read from the same data)."""
    p = group.plots
    if not p:
        return []

    def classes(ax: Any) -> None:
        x = np.arange(len(p["classes"]))
        ax.bar(x - 0.2, p["ref_shares"], 0.4, label="reference", color="#90a4ae")
        ax.bar(x + 0.2, p["win_shares"], 0.4, label="window", color="#1e88e5")
        ax.set_xticks(x, p["classes"])
        ax.set_ylabel("share of predictions")
        ax.legend(frameon=False, fontsize=8)

    def confidence(ax: Any) -> None:
        edges = np.asarray(p["conf_bins"])
        for counts, label, colour in ((p["ref_conf"], "reference", "#90a4ae"), (p["win_conf"], "window", "#1e88e5")):
            c = np.asarray(counts, float)
            ax.stairs(c / max(c.sum(), 1), edges, label=label, color=colour, linewidth=2)
        ax.set_xlabel("probability of the predicted class")
        ax.legend(frameon=False, fontsize=8)

    def lengths(ax: Any) -> None:
        for values, label, colour in ((p["ref_len"], "reference", "#90a4ae"), (p["win_len"], "window", "#1e88e5")):
            v = np.sort(np.asarray(values, float))
            if len(v):
                ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=label, color=colour, linewidth=2)
        ax.set_xlabel("characters (cumulative share)")
        ax.legend(frameon=False, fontsize=8)

    def oov(ax: Any) -> None:
        bins = np.linspace(0, 1, 21)
        for values, label, colour in ((p.get("ref_oov", []), "reference", "#90a4ae"),
                                      (p.get("win_oov", []), "window", "#1e88e5")):
            v = np.asarray(values, float)
            if len(v):
                counts, _ = np.histogram(v, bins=bins)
                ax.stairs(counts / len(v), bins, label=label, color=colour, linewidth=2)
        ax.set_xlabel("out-of-vocabulary rate per text")
        ax.legend(frameon=False, fontsize=8)

    def domain(ax: Any) -> None:
        bins = np.linspace(0, 1, 26)
        for values, label, colour in ((p.get("ref_scores", []), "reference", "#90a4ae"),
                                      (p.get("win_scores", []), "window", "#1e88e5")):
            v = np.asarray(values, float)
            if len(v):
                counts, _ = np.histogram(v, bins=bins)
                ax.stairs(counts / len(v), bins, label=label, color=colour, linewidth=2)
        if p.get("score_threshold") is not None:
            ax.axvline(p["score_threshold"], color="#c62828", linestyle="--", linewidth=1, label="OOD above")
        ax.set_yscale("log")
        ax.set_xlabel("domain classifier score (out of fold)")
        ax.legend(frameon=False, fontsize=8)

    draws = [("class_shares_psi", classes), ("confidence_psi · confidence_ks", confidence),
             ("text_length_ks", lengths), ("oov_rate · no_known_term_share", oov)]
    if p.get("win_scores"):
        draws.append(("domain_classifier_auc · ood_share", domain))
    return [(title, _figure_png([(title, draw)])) for title, draw in draws]


def _fmt(value: Any) -> str:
    """A value for the HTML table."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return html.escape(str(value))


def _badge(verdict: str) -> str:
    """A coloured verdict label."""
    colour = COLOURS.get(verdict, "#000")
    return f'<span class="badge" style="background:{colour}">{html.escape(verdict.replace("_", " "))}</span>'


def render_html(report: dict[str, Any], groups: list[GroupResult], sections: Sequence[str] = ()) -> str:
    """The self-contained HTML page (no external assets; plots are inline PNGs); ``sections``: more HTML at the end
    (the live quality section)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Drift report {e(report['run_id'])}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}",
        "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;"
        "text-align:left;font-size:.9rem}.badge{color:#fff;border-radius:.3rem;padding:.1rem .5rem;font-size:.85rem}"
        ".plots{display:flex;flex-wrap:wrap;gap:.5rem}.plots figure{margin:0}figcaption{font-size:.85rem;color:#555}"
        "code{background:#f4f4f4;padding:0 .2rem}.ex{font-size:.85rem;color:#333}",
        "</style></head><body>",
        f"<h1>Drift report {_badge(report['verdict'])}</h1>",
        f"<p>Window <code>{e(report['window']['start'])}</code> to <code>{e(report['window']['end'])}</code>, "
        f"source <code>{e(report['source'])}</code>, {report['records']} records "
        f"({report['duplicates_dropped']} repeats dropped), generated {e(report['generated_at'])}. "
        f"Exit code {report['exit_code']}.</p>",
        "<p>A signal reports drift only when its effect reaches the drift threshold <em>and</em> its p-value, "
        f"corrected ({e(report['settings']['thresholds']['correction'])}) over the group's signals, is below "
        f"{report['settings']['thresholds']['alpha']}. Groups below {report['settings']['min_samples']} records "
        "are reported as insufficient data.</p>",
    ]
    if not groups:
        parts.append("<p><strong>No records in the window.</strong></p>")
    for group in groups:
        parts.append(f"<h2>Model version {e(group.model_version)} · {e(group.track)} · {group.n} records "
                     f"{_badge(group.verdict)}</h2>")
        parts.append(f"<p>Reference: <code>{e(str(group.reference.get('source')))}</code></p>")
        if group.error:
            parts.append(f"<p><strong>Error:</strong> {e(group.error)}</p>")
        if group.signals:
            parts.append("<table><tr><th>signal</th><th>statistic</th><th>value</th><th>warn / drift at</th>"
                         "<th>test</th><th>p</th><th>p corrected</th><th>n</th><th>verdict</th></tr>")
            for s in group.signals:
                parts.append(
                    f"<tr><td>{e(s.name)}</td><td>{e(s.statistic)}</td><td>{_fmt(s.value)}</td>"
                    f"<td>{_fmt(s.threshold_warn)} / {_fmt(s.threshold_drift)}</td><td>{e(s.test)}</td>"
                    f"<td>{_fmt(s.p_value)}</td><td>{_fmt(s.p_value_adjusted)}</td><td>{s.n}</td>"
                    f"<td>{_badge(s.verdict)}</td></tr>")
            parts.append("</table>")
        plots = _plots(group)
        if plots:
            parts.append("<div class='plots'>")
            parts.extend(f"<figure><img alt='{e(title)}' src='{src}'><figcaption>{e(title)}</figcaption></figure>"
                         for title, src in plots)
            parts.append("</div>")
        if group.domain:
            parts.extend(_domain_section(group))
        if group.signals or group.error:
            parts.append("<p>Next steps for this group:</p><ul>")
            parts.extend(f"<li>{e(step)}</li>" for step in group_next_steps(group))
            parts.append("</ul>")
    parts.extend(sections)
    parts.append(f"<h2>Next steps {_badge(report['verdict'])}</h2><ul>")
    parts.extend(f"<li>{e(step)}</li>" for step in report.get("next_steps", NEXT_STEPS.get(report["verdict"], [])))
    parts.append("</ul></body></html>")
    return "".join(parts)


def _domain_section(group: GroupResult) -> list[str]:
    """The texts behind the out-of-distribution share, the words that characterise them, and the window texts most
    unlike the reference."""
    e = html.escape
    d = group.domain
    ood = next((s for s in group.signals if s.name == "ood_share"), None)
    parts = ["<h3>Texts behind the out-of-distribution share (ood_share)</h3>"]
    if ood is not None and ood.details:
        x = ood.details
        parts.append(f"<p>{x['window_ood_texts']} of {x['window_texts']} sampled window texts "
                     f"({x['window_share']:.1%}) are out of distribution: the domain classifier scores them above "
                     f"all but {x['quantile']:.0%} of the reference texts ({x['window_by_reason']['domain_score']}), "
                     f"or they have no known term ({x['window_by_reason']['no_known_term']}). The reference texts' "
                     f"own share, the share expected without drift, is {x['reference_share']:.1%}.</p>")
    texts = d.get("ood_texts", [])
    if texts:
        parts.append("<ul>")
        parts.extend(f"<li class='ex'>{e(t['text'])} <small>({e(t['reason'])}, {t['score']:.2f})</small></li>"
                     for t in texts)
        parts.append("</ul><p>Words that characterise them (against the reference texts): ")
        parts.append(", ".join(f"<code>{e(t['term'])}</code>" for t in d.get("top_terms_window", [])) or "none")
        parts.append("</p>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h3>What separates the window from the reference (domain_classifier_auc)</h3>"
                 "<p>Terms pointing to the reference: ")
    parts.append(", ".join(f"<code>{e(t['term'])}</code>" for t in d.get("top_terms_reference", [])) or "none")
    parts.append("</p><p>Window texts least like the reference:</p><ul>")
    parts.extend(f"<li class='ex'>{e(x['text'])} <small>({x['score']:.2f})</small></li>" for x in d.get("examples", []))
    parts.append("</ul>")
    return parts


def run_next_steps(verdict: str, groups: list[GroupResult]) -> list[str]:
    """The run's next steps: each judged group's signal lines (named by group), then the verdict's steps."""
    lines = []
    for group in groups:
        for step in group_next_steps(group)[: -len(NEXT_STEPS.get(group.verdict, [])) or None]:
            lines.append(f"{group.model_version}/{group.track}: {step}")
    return lines + NEXT_STEPS.get(verdict, [])
