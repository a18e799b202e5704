# The journeygraph service image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# torch first and pinned: a plain torch requirement pulls a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY graph graph
COPY journeys journeys
COPY models models
COPY engage engage
COPY api api
RUN pip install .
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=6 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["journeygraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
