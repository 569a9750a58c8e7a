"""The drift report: a JSON document with a stable schema, and a self-contained HTML page with inline plots.

JSON schema ``kube-sentiment.drift-report/v1`` (documented in docs/monitoring.md)::

    schema, run_id, generated_at, window{start,end}, source, environment, verdict, exit_code,
    records, duplicates_dropped, files, settings{min_samples, thresholds{...}},
    groups[]{model_version, track, n, verdict, error, reference{source, run_id, profile_n},
             signals[]{name, family, statistic, value, threshold_warn, threshold_drift, test, p_value,
                       p_value_adjusted, n, verdict, details{}},
             domain_classifier{top_terms_window[], top_terms_reference[], examples[]}}
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

from control.drift.signals import GroupResult

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
                              ("top_terms_window", "top_terms_reference", "examples")},
    }


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
    """The group's reference-vs-window plots as ``[(caption, data URI)]``."""
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

    draws = [("Predicted classes", classes), ("Confidence", confidence), ("Text length", lengths),
             ("Vocabulary", oov)]
    return [("Predicted classes, confidence, text length and vocabulary: reference vs window", _figure_png(draws))]


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


def render_html(report: dict[str, Any], groups: list[GroupResult]) -> str:
    """The self-contained HTML page (no external assets; plots are inline PNGs)."""
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
            d = group.domain
            parts.append("<h3>What separates the window from the reference</h3><p>Terms pointing to the window: ")
            parts.append(", ".join(f"<code>{e(t['term'])}</code>" for t in d.get("top_terms_window", [])) or "none")
            parts.append("<br>Terms pointing to the reference: ")
            parts.append(", ".join(f"<code>{e(t['term'])}</code>" for t in d.get("top_terms_reference", []))
                         or "none")
            parts.append("</p><p>Window texts least like the reference:</p><ul>")
            parts.extend(f"<li class='ex'>{e(x['text'])} <small>({x['score']:.2f})</small></li>"
                         for x in d.get("examples", []))
            parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)
