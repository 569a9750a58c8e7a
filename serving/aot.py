"""Compile the fast path's kernels ahead of time: ``python -m serving.aot [--output-dir DIR] [--target-cpu CPU]``.

Builds the extension module ``serving._kernels_aot`` from :mod:`serving.kernels` with numba's ahead-of-time compiler
(``numba.pycc``; it needs a C compiler and the Python headers). The module needs numpy alone: a predictor that
finds it imports neither numba nor llvmlite and compiles nothing at start-up, so it needs no compilation cache on a
read-only root filesystem (the image does not build it yet: its base image has no Python headers). The module records
:func:`serving.kernels.source_digest`; :func:`serving.kernels.compiled` ignores a build from another version of the
kernels and compiles with numba instead.

``--target-cpu`` is LLVM's CPU name (default ``generic``: any x86-64 or arm64 CPU; the kernel is memory-bound, see
docs/benchmarks.md). Exit codes: 0 built, 1 the build failed, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from model.process import Outcome, ProcessSettings, run_process, settings_parser

log = logging.getLogger("serving.aot")


class AotSettings(ProcessSettings):
    """Where to write the ahead-of-time build of the kernels and for which CPU."""

    model_config = SettingsConfigDict(env_prefix="KS_AOT_")

    output_dir: Path | None = None
    """Directory to write ``_kernels_aot.<platform>.so`` into. Default: the installed ``serving`` package, where
    :func:`serving.kernels.compiled` looks for it."""
    target_cpu: str = "generic"
    """LLVM CPU name to compile for (``generic``, ``x86-64-v2``, ``x86-64-v3``, ``host``, ...)."""


def _constant(value: int) -> Callable[[], int]:
    """A function returning ``value`` (numba compiles the closed-over value in as a constant)."""

    def source_digest() -> int:
        return value

    return source_digest


def build(output_dir: Path, target_cpu: str) -> Path:
    """Compile the exported kernels into ``output_dir``; returns the extension module's path."""
    import numba

    from serving import kernels

    with warnings.catch_warnings():  # numba.pycc is deprecated in favour of a successor that is not released yet
        warnings.simplefilter("ignore")
        from numba.pycc import CC

    rebind = kernels.jit_namespace(lambda func: numba.njit(nogil=True)(func))
    cc = CC(kernels.AOT_MODULE)
    cc.output_dir = str(output_dir)
    cc.target_cpu = "" if target_cpu == "generic" else target_cpu
    cc.verbose = False
    for name, signature in kernels.EXPORTS.items():
        cc.export(name, signature)(rebind(name))
    cc.export("source_digest", "i8()")(_constant(kernels.source_digest()))
    output_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc.compile()
    return output_dir / cc.output_file


def _run(settings: AotSettings, _args: argparse.Namespace) -> Outcome:
    from serving import kernels

    output_dir = settings.output_dir or Path(kernels.__file__).parent
    started = time.monotonic()
    path = build(output_dir, settings.target_cpu)
    log.info("built %s for %s in %.1fs", path, settings.target_cpu, time.monotonic() - started)
    return Outcome(0, {"module": str(path), "target_cpu": settings.target_cpu, "digest": kernels.source_digest()})


def main(argv: list[str] | None = None) -> int:
    """``python -m serving.aot``: build the extension module; returns the exit code."""
    parser = settings_parser(AotSettings, prog="python -m serving.aot", description=__doc__.split("\n")[0])
    return run_process(AotSettings, argv, _run, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
