# syntax=docker/dockerfile:1
#
# One image for every Belfry process: the four services and the local stand-ins.
#
#   docker build -t belfry:local .
#   docker run --rm -p 8080:8080 belfry:local services.rooms      # one service
#   docker run --rm belfry:local emulators.chime --host 0.0.0.0   # the Chime SDK emulator
#
# The argument is a module run with `python -m` (ENTRYPOINT), so `services.<name>`,
# `services.platform` (all four in one process) and `emulators.aws|chime` all work.
# Settings are environment variables: docs/configuration.md, docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with the runtime dependencies and Belfry itself --------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change reuses this layer.
# Only [project].dependencies: the dev extra (pytest, ruff, mypy, ...) never ships.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
 && pip install --upgrade pip \
 && pip install --requirement /tmp/requirements.txt

# Then the code, installed (not editable) without touching the dependencies again.
# pip compiles the .pyc files here: the runtime image has a read-only file system.
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY emulators ./emulators
RUN pip install --no-deps . \
 && pip check

# --- runtime: slim, non-root, nothing but the virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Re-declared: an ARG before the first FROM is only visible in FROM lines.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="belfry" \
      org.opencontainers.image.description="Belfry: backend platform for products built on the Amazon Chime SDK (scheduler, rooms, chat, notifier) and its local stand-ins" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 belfry \
 && useradd --system --uid 10001 --gid belfry --home-dir /home/belfry --create-home \
            --shell /usr/sbin/nologin belfry

COPY --from=builder /opt/venv /opt/venv

# BELFRY_HOST: the settings default is 127.0.0.1, unreachable from outside a container.
# BELFRY_LOG_FORMAT: one JSON object per line for the log collector.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BELFRY_HOST=0.0.0.0 \
    BELFRY_PORT=8080 \
    BELFRY_LOG_FORMAT=json

WORKDIR /home/belfry
USER 10001:10001
EXPOSE 8080
# uvicorn stops on SIGTERM: stop consuming, finish in-flight work, flush the outbox.
STOPSIGNAL SIGTERM

# No HEALTHCHECK here: the same image runs processes on different ports (services on
# 8080, moto on 5000, the Chime emulator on 9911). docker-compose.yml and the
# Kubernetes probes check each one where it listens.
ENTRYPOINT ["python", "-m"]
CMD ["services.platform"]
