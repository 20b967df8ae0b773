# The rater worker image: `docker compose up --scale rater=N` runs N processes in one consumer
# group. Services (Kafka, Redis, ClickHouse) come from docker-compose.yml, not from this image.
# rater is installed from its wheel (not editable, no source tree in the image) with the
# runtime dependencies only, as `pip install rater` would; the migrations are package data.

# the wheel, built from the sources (rater/clickhouse/schemas links to schemas/clickhouse)
FROM python:3.11-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rater rater
COPY kernels kernels
COPY schemas schemas
RUN pip wheel --no-deps -w /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# the runtime dependencies first, so a code change does not reinstall them: a stub package
# with the real pyproject.toml pulls them in, then goes
COPY pyproject.toml README.md ./
COPY rater/__init__.py rater/__init__.py
COPY kernels/__init__.py kernels/__init__.py
RUN pip install . && pip uninstall -y rater && rm -rf rater kernels pyproject.toml README.md

COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/rater-*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 rater && mkdir -p /home/rater && chown rater /home/rater
USER rater
ENV HOME=/home/rater NUMBA_CACHE_DIR=/tmp/numba

EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=5s --retries=6 \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('RATER_METRICS_PORT', '9464'), timeout=3)"
ENTRYPOINT ["rater"]
CMD ["run", "--workers", "1"]
