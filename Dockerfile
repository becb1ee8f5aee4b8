# syntax=docker/dockerfile:1
# The scale-scheduler operator image: `scale-sched operator run` with CPU-only torch and the
# policy checkpoint shipped in the package (scale_scheduler/policy/checkpoints/).
# Not built in this repository's CI (no Docker engine there); build with:
#   docker build -t ghcr.io/scale-scheduler/scale-scheduler:0.1.0 .

ARG PYTHON_VERSION=3.11
# CPU wheels of torch: the default PyPI wheel for Linux pulls in ~2 GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first so source edits do not invalidate this layer. Only [project] dependencies, the operator's
# runtime: the train and plots extras (TensorBoard, Gymnasium, SciPy, OR-Tools, matplotlib) stay out, and
# tests/operator/test_runtime_imports.py proves the operator and its shipped checkpoints load without them.
COPY pyproject.toml README.md ./
RUN pip install --index-url "$TORCH_INDEX_URL" torch \
 && python - <<'PY'
import subprocess, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
subprocess.check_call([sys.executable, "-m", "pip", "install", *[d for d in deps if not d.startswith("torch")]])
PY
COPY simulator/ simulator/
COPY policy/ policy/
COPY operator/ operator/
RUN pip install --no-deps . && scale-sched --help > /dev/null

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.source="https://github.com/scale-scheduler/scale-scheduler" \
      org.opencontainers.image.description="SCALE deep-RL Kubernetes scheduler for agentic LLM workflows" \
      org.opencontainers.image.licenses="Apache-2.0"
# Same numeric user as the chart's securityContext (runAsUser: 10001).
RUN groupadd --system --gid 10001 scale && useradd --system --uid 10001 --gid scale --home-dir /tmp scale
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8080 9090 8888
ENTRYPOINT ["scale-sched"]
CMD ["operator", "run", "--all-namespaces"]
