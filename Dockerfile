# The Streamlit app with the shipped model baked in.
#   docker build -t digit-app .
#   docker run -p 8501:8501 -e DIGIT_APP_ADMIN_PASSWORD='a-long-secret' \
#     -v digit-app-data:/app/data -v digit-app-models:/app/model_store digit-app
# Retraining, rollback and deleting feedback stay disabled until DIGIT_APP_ADMIN_PASSWORD is set.

# Two stages: the dependencies are installed into a virtual environment and trimmed in the
# first, which alone has the tools for it; the image copies only the environment. Both start
# from the same base, so the environment's interpreter links stay valid (BENCHMARKS.md has the
# sizes: 3.2 GB single-stage, 2.5 GB so).
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# binutils, for strip (build stage only). Not pinned: the build stage ships nothing of it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
# pip compiles the bytecode here (the app's user could not write it at run time). TensorFlow's
# C++ headers (for compiling custom ops) and its libraries' symbol tables (for debuggers) are
# 0.7 GB that serving and retraining never read.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && tf=/opt/venv/lib/python3.11/site-packages/tensorflow \
    && rm -rf "$tf/include" \
    && find "$tf" -name '*.so*' -type f -exec strip --strip-unneeded {} +

FROM python:3.11.13-slim-bookworm

# MPLCONFIGDIR: Matplotlib's cache (retraining's plots), since the home folder /app is not writable.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLCONFIGDIR=/app/.cache/matplotlib \
    DIGIT_APP_DATA_DIR=/app/data \
    DIGIT_APP_MODEL_STORE=/app/model_store \
    DIGIT_APP_CACHE_DIR=/app/.cache/digit-app \
    DIGIT_APP_REQUIRE_ADMIN=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so code changes do not invalidate this (large) layer.
COPY --from=build /opt/venv /opt/venv

COPY .streamlit/config.toml ./.streamlit/config.toml
COPY app.py ./
COPY digit_app/ ./digit_app/
COPY training/ ./training/
# The model store is writable by the app user (retraining publishes new versions into it).
COPY --chown=app:app model_store/ ./model_store/

RUN mkdir -p /app/data /app/.cache \
    && chown -R app:app /app/data /app/.cache
# Feedback database, job logs and candidates; and the model versions (new ones from retraining).
VOLUME ["/app/data", "/app/model_store"]

USER 10001:10001

EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status == 200 else 1)"]

CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
