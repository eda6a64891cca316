# One image for the three CityOS services; docker-compose.yml picks the service with
# `cityos serve ingest|catalog|publish`.
FROM python:3.11-slim

# CITYOS_SCHEMAS_DIR: once installed into site-packages, the package cannot find the repository's
# schemas/ folder by itself, so point it at the copy made below.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CITYOS_SCHEMAS_DIR=/app/schemas

WORKDIR /app

COPY pyproject.toml README.md ./
COPY cityos ./cityos
COPY services ./services
COPY schemas ./schemas
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cityos

USER cityos
EXPOSE 8000 8001 8002
CMD ["cityos", "--help"]
