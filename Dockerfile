# The skolflow worker image: a Prefect process worker whose flow runs are subprocesses beside it, with skolflow
# and exactly the dependencies in uv.lock. It holds no credentials: PREFECT_API_URL, SKOLFLOW_DATABASE_URL and the
# rest come from the environment it runs in (a Kubernetes Secret, README § Scale-out), secrets from Prefect blocks.
#
#   docker build -t registry.kommun.se/skolflow/worker:0.1.0 .
#   docker run --rm -e PREFECT_API_URL=http://prefect.kommun.se:4200/api registry.kommun.se/skolflow/worker:0.1.0
FROM python:3.11-slim

# tini as PID 1: it passes a stop signal on to the worker and reaps the processes that flow runs leave behind.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN pip install --no-cache-dir uv==0.13.9

# uid and gid 1001: what the prefect-worker Helm chart runs its pods as.
RUN groupadd --system --gid 1001 skolflow \
    && useradd --system --uid 1001 --gid skolflow --create-home --home-dir /home/skolflow skolflow

# /app is where prefect.yaml's pull step leads every run: the directory holding the installed skolflow package.
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/app/.venv/bin:$PATH

# The dependencies first, in a layer of their own that a change to skolflow's code does not rebuild. --locked
# installs exactly uv.lock and stops the build if the lock no longer matches pyproject.toml.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --no-cache

# Then skolflow itself, editable (uv's default): its codecs read the XSDs from /app/schemas beside the package.
# The files stay root's; the worker only reads them.
COPY README.md ./
COPY schemas ./schemas
COPY skolflow ./skolflow
RUN uv sync --locked --no-dev --no-cache

# By number, so that Kubernetes' runAsNonRoot can check it is not root.
USER 1001:1001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "skolflow", "--type", "process"]
