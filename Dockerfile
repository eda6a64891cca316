# One image for the four CityOS services and the operator's commands; docker-compose.yml picks the
# service with `cityos serve ingest|catalog|publish|feeds` and runs `cityos kafka setup` with it.
# The site's map library and the API docs UI come from npm at the versions of web/package-lock.json;
# only the installed files are copied into the image (no Node.js at run time, no install scripts).
FROM node:20-slim AS web-assets
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

# CITYOS_SCHEMAS_DIR: once installed into site-packages, the package cannot find the repository's
# schemas/ folder by itself, so point it at the copy made below.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CITYOS_SCHEMAS_DIR=/app/schemas \
    CITYOS_WEB_ASSETS_DIR=/app/web/node_modules

WORKDIR /app

COPY pyproject.toml README.md ./
COPY cityos ./cityos
COPY services ./services
COPY schemas ./schemas
COPY --from=web-assets /web/node_modules ./web/node_modules
# uid and gid 10001, both fixed: docker-compose.yml hands the secrets volumes to exactly this owner.
# The snapshots folder exists in the image so that a new volume mounted there is the service's own.
RUN pip install . \
    && groupadd --system --gid 10001 cityos \
    && useradd --system --uid 10001 --gid cityos --home-dir /app --shell /usr/sbin/nologin cityos \
    && install -d -o cityos -g cityos -m 0750 /var/lib/cityos/snapshots

USER cityos
EXPOSE 8000 8001 8002 8003 8005
CMD ["cityos", "--help"]
