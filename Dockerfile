# syntax=docker/dockerfile:1
# llmrelay: a small, non-root image of the gateway (docs/operations.md, "Container").
# Build: docker build -t llmrelay .   Run: docker run -p 8080:8080 -v llmrelay:/data llmrelay

# -- build: the wheel and the locked dependencies, into a venv of their own -----------
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# Exactly what uv.lock pins, with the OpenTelemetry extra (off until tracing: true).
# Compiled to bytecode here: the image runs with PYTHONDONTWRITEBYTECODE=1, so without
# it every start compiled each module from source (~2 s of CPU before listening).
RUN uv export --frozen --no-dev --extra otel --no-emit-project --no-hashes -o /tmp/requirements.txt \
 && uv build --wheel --out-dir /tmp/dist \
 && uv venv /opt/llmrelay --python /usr/local/bin/python3 \
 && uv pip install --compile-bytecode --python /opt/llmrelay/bin/python \
      -r /tmp/requirements.txt /tmp/dist/*.whl

# -- run --------------------------------------------------------------------------------
FROM python:3.12-slim
ENV PATH=/opt/llmrelay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LLMRELAY_HOST=0.0.0.0 \
    LLMRELAY_PORT=8080 \
    LLMRELAY_DATABASE_URL=sqlite+aiosqlite:////data/llmrelay.db \
    LLMRELAY_LOG_FILE=stdout
COPY --from=build /opt/llmrelay /opt/llmrelay
COPY deploy/docker-entrypoint.sh /usr/local/bin/llmrelay-entrypoint
RUN groupadd --system --gid 10001 llmrelay \
 && useradd --system --uid 10001 --gid llmrelay --home-dir /data --shell /usr/sbin/nologin llmrelay \
 && mkdir -p /data \
 && chown llmrelay:llmrelay /data \
 && chmod 0755 /usr/local/bin/llmrelay-entrypoint
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# /health is always open (THREAT_MODEL.md); no curl in the slim image, Python it is.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LLMRELAY_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["llmrelay-entrypoint"]
CMD ["serve"]
