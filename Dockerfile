# Konfig's container image.
#
#   docker build -t konfig:0.1.0 .
#   docker run --rm -p 8000:8000 -v konfig-data:/data konfig:0.1.0
#
# Two stages: `builder` installs Konfig and its dependencies into a virtualenv at /opt/konfig;
# `runtime` copies only that virtualenv onto a clean slim image, so no build tool, pip cache or
# source tree reaches production. The runtime runs as an unprivileged numeric user, needs to
# write only to /data (and /tmp), and so works with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/konfig

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so editing the source does not reinstall them.
# Every dependency ships wheels for linux/amd64 and linux/arm64; on a platform where one does
# not, install build-essential here, in the builder, never in the runtime stage. The Python SDK
# (`konfig-client`, which the CLI uses) is one of them, installed from its folder in this
# repository, where pyproject.toml names it.
COPY pyproject.toml README.md ./
COPY sdks/python ./sdks/python
RUN mkdir -p src/konfig \
    && touch src/konfig/__init__.py \
    && /opt/konfig/bin/pip install . \
    && /opt/konfig/bin/pip uninstall --yes konfig \
    && rm -rf src

# Then Konfig itself, as a wheel (the Alembic migrations ship inside the package).
COPY src ./src
RUN /opt/konfig/bin/pip install --no-deps . \
    && /opt/konfig/bin/konfig --help > /dev/null


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="konfig" \
      org.opencontainers.image.description="Typed, versioned, encrypted configuration for microservices" \
      org.opencontainers.image.licenses="MIT"

# The bytecode was compiled at install time: a read-only root filesystem must not be written.
ENV PATH=/opt/konfig/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KONFIG_DATA_DIR=/data \
    KONFIG_HOST=0.0.0.0 \
    KONFIG_PORT=8000

# A fixed numeric uid/gid, so Kubernetes can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 konfig \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin konfig \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0750 /data

COPY --from=builder /opt/konfig /opt/konfig

# A new named volume starts as a copy of /data here, owned by the konfig user.
VOLUME ["/data"]
WORKDIR /data

USER 10001:10001

EXPOSE 8000

# No curl in a slim image: ask /health with the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('KONFIG_PORT', '8000'), timeout=4)"]

# `konfig serve` applies pending migrations (under a database lock) and then serves. It stops
# gracefully on SIGTERM within KONFIG_SHUTDOWN_GRACE_SECONDS.
CMD ["konfig", "serve", "--host", "0.0.0.0"]
