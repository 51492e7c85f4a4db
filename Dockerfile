# The triage worker and CLI. Kafka comes from the compose file or the environment
# (TRIAGE_BOOTSTRAP_SERVERS); the image holds no broker of its own.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRIAGE_DATA_DIR=/var/lib/triage/worker

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gpuaas_triage ./gpuaas_triage
RUN pip install . \
    && useradd --system --create-home --home-dir /var/lib/triage triage

USER triage
WORKDIR /var/lib/triage
CMD ["triage", "worker"]
