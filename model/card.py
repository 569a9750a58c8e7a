"""The model card: what one trained version can and cannot do, written beside it in the model directory and logged
to MLflow with its run.

Numbers come from the run (holdout scores, behaviour pass rates, data lineage); the prose that does not change
between versions (intended use, what the model is) lives in docs/model.md, which the card points to.
"""

from __future__ import annotations

from typing import Any

from model.behaviour import CAPABILITIES, BehaviourReport
from model.evaluate import Evaluation

CARD_FILE = "MODEL_CARD.md"
MAX_FAILURES = 12


def render(
    metadata: dict[str, Any], evaluation: Evaluation, behaviour: BehaviourReport, version: str | None = None
) -> str:
    """Markdown card of one version: lineage, parameters, holdout scores, behaviour per capability, failures."""
    name = metadata.get("registered_model", "sentiment")
    params = metadata.get("params", {})
    lines = [
        f"# Model card: {name}" + (f" version {version}" if version else ""),
        "",
        "Sentiment (negative / neutral / positive) of short English texts: TF-IDF word and character n-grams, "
        "VADER lexicon features with negation, and a linear classifier. What the model is, its intended use and "
        "its known limits: docs/model.md.",
        "",
        "## Lineage",
        "",
        f"- data: `{metadata.get('data_source', '?')}`, fingerprint `{str(metadata.get('data_fingerprint', ''))[:12]}`",
        f"- frozen holdout fingerprint `{str(metadata.get('holdout_fingerprint', ''))[:12]}`",
        f"- code: `{metadata.get('git_commit', 'unknown')}`",
        "- parameters: " + ", ".join(f"`{k.removeprefix('model.')}={v}`" for k, v in sorted(params.items())),
        "",
        "## Holdout",
        "",
        f"macro-F1 **{evaluation.macro_f1:.4f}**, accuracy {evaluation.accuracy:.4f}, Brier {evaluation.brier:.4f}, "
        f"ECE {evaluation.ece:.4f} (the holdout has the training data's topic mix).",
        "",
        "| class | precision | recall | F1 |",
        "|---|---|---|---|",
    ]
    for cls, scores in evaluation.per_class.items():
        lines.append(f"| {cls} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1']:.3f} |")
    lines += ["", "## Behaviour suite", ""]
    if not behaviour.applicable:
        lines.append(f"Not scored: {behaviour.reason}.")
    else:
        lines += [
            f"Overall **{behaviour.overall:.1%}** of {sum(behaviour.counts.values())} cases "
            f"(suite `{behaviour.fingerprint[:12]}`).",
            "",
            "| capability | pass rate | cases | what it asks |",
            "|---|---|---|---|",
        ]
        for capability, rate in behaviour.pass_rates.items():
            lines.append(f"| {capability} | {rate:.1%} | {behaviour.counts[capability]} | {CAPABILITIES[capability]} |")
        if behaviour.failures:
            lines += ["", f"Some failures (of {len(behaviour.failures)}):", ""]
            for failure in behaviour.failures[:MAX_FAILURES]:
                texts = " / ".join(f"“{t}”" for t in failure.texts[:2])
                expected = "/".join(failure.expected) or "one label"
                lines.append(f"- {failure.capability}: {texts} → {', '.join(failure.got[:2])} (expected {expected})")
    return "\n".join(lines) + "\n"
