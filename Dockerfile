# Wave completion service: the project's wheel, with the committed default model, on a slim Python.
#   docker build -t wave-completion .
#   docker run --rm -p 8000:8000 wave-completion
# Configure with WAVE_* environment variables (app/settings.py), e.g. -e WAVE_MAX_BATCH_SIZE=32.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# README.m[d]: the readme is optional, the glob lets the build go on without it
COPY pyproject.toml README.m[d] ./
COPY app ./app
COPY training ./training
COPY model_store ./model_store
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    WAVE_COMPILE_CACHE=~/.cache/wave-completion/xla \
    WAVE_HOST=0.0.0.0 \
    WAVE_PORT=8000
# the wheel brings its dependencies (tensorflow-cpu among them) as pyproject.toml declares them
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir /dist/*.whl
# the user's cache folder holds WAVE_COMPILE_CACHE (~ expands to /home/wave): XLA's compiled programs, which a
# restarted container loads instead of compiling; -v wave-xla:/home/wave/.cache/wave-completion keeps them
# across containers
RUN groupadd --gid 10001 wave \
    && useradd --create-home --no-log-init --uid 10001 --gid wave wave \
    && install -d -o wave -g wave /home/wave/.cache /home/wave/.cache/wave-completion
USER 10001:10001
WORKDIR /home/wave
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('WAVE_PORT', '8000'), timeout=4)"]
CMD ["wave-serve"]
