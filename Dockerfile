# syntax=docker/dockerfile:1.7
# One image for every kube-sentiment process (train, serve, ship, drift): the command picks the process.
#
#   docker build -t kube-sentiment:0.1.0 .
#   docker run --rm kube-sentiment:0.1.0 serve --help
#
# Stage 1 installs the locked dependencies into /opt/venv (layer cached until pyproject.toml/uv.lock change),
# then the project itself (non-editable). Stage 2 copies only the virtual environment: no uv, no pip cache,
# no compilers, no source tree.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# uv from PyPI, pinned; the project lock decides every other version.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

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
