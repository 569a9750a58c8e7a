# syntax=docker/dockerfile:1.7
# One image for every kube-sentiment process (train, serve, ship, drift): the command picks the process.
#
#   docker build -t kube-sentiment:0.1.0 .
#   docker run --rm kube-sentiment:0.1.0 serve --help
#
# Stage 1 installs the locked dependencies into /opt/venv (layer cached until pyproject.toml/uv.lock change),
# then the project itself (non-editable), then compiles the fast path's kernels ahead of time into it. Stage 2 copies
# only the virtual environment: no uv, no pip cache, no compilers, no source tree.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# uv from PyPI, pinned; the project lock decides every other version.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# C and C++ compilers (numba checks both) and Python's headers for numba's ahead-of-time compiler (below). The
# official python images carry the headers; Debian's own Python (a Debian base image) needs python3-dev. None of it
# reaches the runtime stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && if [ ! -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
         apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /src

# Dependencies only: this layer is rebuilt when the lock changes, not when the source does.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# The project itself, installed as a regular (non-editable) package so /src is not needed at run time.
COPY model/ model/
COPY serving/ serving/
COPY control/ control/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
    && test -x /opt/venv/bin/kube-sentiment

# The kernels compiled ahead of time into the installed package (serving/_kernels_aot.*.so, needing numpy alone): a
# predictor neither imports numba nor compiles at start-up (faster ready, ~100 MB less resident, nothing to cache on a
# read-only root filesystem). Built for any x86-64 (or arm64) CPU; KS_SERVE_KERNELS=aot makes a pod refuse to start
# without it.
# (-I: the installed package, not /src/serving from the working directory.)
RUN /opt/venv/bin/python -I -m serving.aot --log-level WARNING \
    && /opt/venv/bin/python -I -c 'import sys; from serving.kernels import ahead_of_time; sys.exit(ahead_of_time()[1] or None)'


FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="kube-sentiment" \
      org.opencontainers.image.description="Kubernetes-native MLOps for text classification: train, serve, ship, drift" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

# HOME and every scratch directory point at /tmp, which the charts mount as an emptyDir so the root
# filesystem can be read-only.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /tmp
USER ${APP_UID}:${APP_GID}

# 8080 HTTP and 8081 gRPC (serve), 9090 (ship).
EXPOSE 8080 8081 9090

ENTRYPOINT ["kube-sentiment"]
CMD ["--help"]
