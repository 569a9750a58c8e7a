"""The predictor process's start: KServe's flags plus ours, flags over env over defaults, exit 78 on bad
settings, the garbage collector tuned after load."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from model.process import settings_from_args
from serving.__main__ import _tune_gc, build_parser, main
from serving.settings import ServeSettings


def test_settings_from_flags_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KS_SERVE_TRACK", "canary")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    args = build_parser().parse_args(["--model-dir", "/mnt/models", "--max-texts", "8", "--log-text"])
    s = settings_from_args(ServeSettings, args)
    assert (s.model_name, s.track, s.max_texts, s.log_text) == ("sentiment", "canary", 8, True)
    assert s.tracking_uri == "http://mlflow:5000" and s.model_dir == Path("/mnt/models")
    assert args.http_port == 8080 and args.grpc_port == 8081
    assert settings_from_args(ServeSettings, build_parser().parse_args(["--model_name", "other"])).model_name == "other"
    monkeypatch.setenv("KS_SERVE_LOG_TEXT", "true")
    assert settings_from_args(ServeSettings, build_parser().parse_args(["--no-log-text"])).log_text is False


def test_no_flag_of_ours_is_read_by_kserves_import_time_parser() -> None:
    # kserve.model_server parses sys.argv at import with prefix matching: a flag of ours that is a prefix of one
    # of KServe's would silently set KServe's option.
    from kserve.model_server import parser as kserve_parser

    theirs = set(kserve_parser._option_string_actions)
    ours = set(build_parser()._option_string_actions) - theirs
    assert "--model-uri" in ours and "--model_name" in theirs
    assert not [(o, t) for o in ours for t in theirs if t.startswith(o)]


def test_conflicting_or_bad_settings_exit_with_config_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-dir", "/x", "--model-uri", "models:/sentiment/1"]) == 78
    assert "either model_uri" in capsys.readouterr().err
    assert main(["--model-uri", "s3://bucket/model", "--tracking-uri", "http://127.0.0.1:1"]) == 78
    assert "must look like models:/" in capsys.readouterr().err
    assert main(["--model-dir", "/x", "--workers", "0"]) == 78
    assert "--workers must be at least 1, not 0" in capsys.readouterr().err
    assert main(["--model-dir", "/x", "--workers", "2", "--http_port", "0"]) == 78  # before any load
    assert "several workers share fixed ports" in capsys.readouterr().err
    assert main(["--max-texts", "lots"]) == 78
    assert "--max-texts / KS_SERVE_MAX_TEXTS = 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize(("threshold", "expected"), [(100_000, 100_000), (0, None)])
def test_gc_is_frozen_and_tuned_after_load(threshold: int, expected: int | None) -> None:
    before = gc.get_threshold()
    try:
        _tune_gc(threshold)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (expected or before[0], *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert ServeSettings().gc_threshold == 100_000
