# Chapter 06's web service: gunicorn serving the model named by MODEL_URI.
#   docker build -t ride-duration .
#   docker run -p 9696:9696 -e MODEL_URI=models:/nyc-taxi-duration@champion \
#     -e MLFLOW_TRACKING_URI=http://host.docker.internal:5000 ride-duration
FROM python:3.11-slim

# Logs straight to `docker logs`; no .pyc files in the image's layers.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODEL_URI=models:/nyc-taxi-duration@champion \
    PROMETHEUS_MULTIPROC_DIR=/tmp/service-metrics

WORKDIR /app

# The dependencies first, so editing helpers/ does not reinstall them. Pipfile.lock pins every
# package with hashes; --deploy refuses a lock that no longer matches the Pipfile.
COPY Pipfile Pipfile.lock ./
RUN pip install --no-cache-dir pipenv==2026.10.3 \
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9696/ping', timeout=4)"]

# Exactly helpers.service_process.gunicorn_args("0.0.0.0:9696", 2); a test compares them.
CMD ["gunicorn", "--bind", "0.0.0.0:9696", "--workers", "2", "--threads", "2", "helpers.serving:create_app()"]
