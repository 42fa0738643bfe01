# Chapter 07's web service: gunicorn serving the model named by MODEL_URI. The container reads a
# registered model from a tracking server that proxies its artifacts (`mlflow server
# --serve-artifacts`, as chapter 09's team server runs), or a pickled model from a mounted folder:
# the file:// artifacts of a local store (chapters 02-04's mlflow.db) are out of its reach.
#   docker build -t ride-duration .
# Linux and Codespaces: the host's network, so the container reaches a server on the host's
# 127.0.0.1 and listens on the host's port 9696 itself (add -e MLFLOW_TRACKING_USERNAME
# -e MLFLOW_TRACKING_PASSWORD for a server with users).
#   docker run --rm --network host -e MLFLOW_TRACKING_URI=http://127.0.0.1:5001 ride-duration
# Docker Desktop (macOS, Windows): a published port, and the host as host.docker.internal.
#   docker run --rm -p 9696:9696 -e MLFLOW_TRACKING_URI=http://host.docker.internal:5001 ride-duration
# A pickled pipeline, e.g. chapter 02's models/pipeline.bin, from a mounted folder:
#   docker run --rm --network host -v "$PWD/models:/models:ro" -e MODEL_URI=/models/pipeline.bin ride-duration
# BASE_IMAGE: any image with Python 3.11 whose `python` and `pip` come first on PATH; where no
# registry is reachable, helpers.serve.container builds one from Debian packages.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Logs straight to `docker logs`; no .pyc files in the image's layers.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODEL_URI=models:/nyc-taxi-duration@champion \
    PORT=9696 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/service-metrics

WORKDIR /app

# The dependencies first, so editing helpers/ does not reinstall them. Pipfile.lock pins every
# package with hashes; --deploy refuses a lock that no longer matches the Pipfile.
# A network that intercepts TLS needs its CA bundle for PyPI: given as a build secret
# (`docker build --secret id=ca_bundle,src=/path/to/ca.pem`, BuildKit), it is there for this step
# only and never stored in the image.
COPY Pipfile Pipfile.lock ./
RUN --mount=type=secret,id=ca_bundle \
    if [ -f /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && pip install --no-cache-dir pipenv==2026.10.3 \
    && pipenv install --system --deploy \
    && pip uninstall --yes pipenv

COPY helpers/ helpers/

# The service needs no privileges: a user without a password or a shell, owning only the
# folder the gunicorn workers share their metrics through (empty in a fresh container).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin service \
    && mkdir -p /tmp/service-metrics \
    && chown 10001 /tmp/service-metrics
USER 10001

EXPOSE 9696
# The probe follows PORT, for a container that moves it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/ping' % os.environ['PORT'], timeout=4)"]

# Exactly helpers.serve.service_process.gunicorn_args(None, 2); a test compares them. With no --bind,
# gunicorn listens on 0.0.0.0:$PORT (GUNICORN_CMD_ARGS="--bind ..." picks another address).
CMD ["gunicorn", "--workers", "2", "--threads", "2", "--no-control-socket", "helpers.serve.serving:create_app()"]
