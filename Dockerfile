# syntax=docker/dockerfile:1
#
# Two images from one Dockerfile, both installed from the lock files (requirements/,
# written by `make lock`), never resolved at build time:
#
#   docker build -t belfry:0.1.0 .                  # target `runtime` (the last stage):
#                                                   # production, the four services
#   docker build --target local -t belfry:local .   # + moto and the emulators
#
#   docker run --rm -p 8080:8080 belfry:0.1.0 services.rooms      # one service
#   docker run --rm -p 8080:8080 belfry:local                     # `make run` in a container
#   docker run --rm belfry:local emulators.chime --host 0.0.0.0   # the Chime SDK emulator
#
# The argument is a module run with `python -m` (ENTRYPOINT): `services.<name>` and
# `services.platform` (all four in one process) in both; `emulators.aws|chime` and the
# embedded stand-ins of `services.platform` only in `local`. Settings are environment
# variables: docs/configuration.md, docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with exactly the production lock and Belfry ---------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from the lock alone, so a code change reuses this layer.
# --no-deps: the lock names every package at its version; nothing else comes in
# (`pip check` below proves nothing is missing). The production lock holds the
# runtime dependencies only: no moto, no emulators' servers, no dev tools.
COPY requirements/prod.lock ./requirements/
RUN pip install --no-deps --requirement requirements/prod.lock

# Then the code, installed (not editable) without touching the dependencies again:
# shared and services only. pip compiles the .pyc files here: the runtime image has
# a read-only file system.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps . \
 && pip check

# --- local-builder: the builder's virtualenv plus the local lock and emulators -------
FROM builder AS local-builder

COPY requirements/local.lock ./requirements/
RUN pip install --no-deps --requirement requirements/local.lock
COPY emulators ./emulators
RUN rm -rf build \
 && pip install --no-deps --force-reinstall . \
 && pip check

# --- base: what both images share: slim, non-root, the virtualenv on PATH ------------
FROM ${PYTHON_IMAGE} AS base

# Re-declared: an ARG before the first FROM is only visible in FROM lines.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="belfry" \
      org.opencontainers.image.description="Belfry: backend platform for products built on the Amazon Chime SDK (scheduler, rooms, chat, notifier)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 belfry \
 && useradd --system --uid 10001 --gid belfry --home-dir /home/belfry --create-home \
            --shell /usr/sbin/nologin belfry

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

# --- local: for a laptop, docker compose's moto and chime containers, and CI ---------
# The runtime image plus moto, waitress and the emulators package (the local lock):
# `services.platform` embeds moto and the Chime SDK emulator where no endpoint is set.
FROM base AS local

LABEL org.opencontainers.image.title="belfry-local" \
      org.opencontainers.image.description="Belfry with its local stand-ins (moto, the Chime SDK emulator): not for production"
COPY --from=local-builder /opt/venv /opt/venv
CMD ["services.platform"]

# --- runtime: the production image (the default target) -----------------------------
# Nothing but the production virtualenv. Kubernetes runs one service per Deployment
# (`args: ["services.<name>"]`); without an argument the image runs all four in one
# process against the AWS and Chime SDK endpoints it is given (real AWS by default):
# it has no moto or emulator to embed, so "unset" means the real services here.
FROM base AS runtime

COPY --from=builder /opt/venv /opt/venv
ENV BELFRY_PLATFORM_EMBED_AWS=false \
    BELFRY_PLATFORM_EMBED_CHIME=false
CMD ["services.platform"]
