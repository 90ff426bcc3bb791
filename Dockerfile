# The workshop's lab image: the kit, its virtualenv and the offline model, with llama-server
# compiled at build time (portable, no -march=native) so the image runs on any x86-64 or
# arm64 machine and the cpu profile works offline. docker-compose.yml builds it for `lab`,
# `lab-cpu` and `llama-cpu`; on its own:
#   docker build -t llm-streaming-kit-lab . && docker run --rm -p 127.0.0.1:8888:8888 \
#       -e JUPYTER_TOKEN=change-me llm-streaming-kit-lab
FROM python:3.11-slim-bookworm

# build-essential and cmake compile llama-server; make runs the kit's commands.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake make \
    && rm -rf /var/lib/apt/lists/*

# KIT_LLAMA_NATIVE=0 stays set at run time too: it names the portable build that
# `make workshop` then finds in the cache instead of compiling a native one.
ENV KIT_LLAMA_NATIVE=0 \
    KIT_CACHE_DIR=/opt/llm-kit-cache \
    KIT_LAB_IP=0.0.0.0 \
    KIT_LAB_PORT=8888 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/kit/.venv/bin:$PATH

RUN useradd --create-home --uid 1000 --shell /bin/bash kit \
    && mkdir -p /kit /opt/llm-kit-cache \
    && chown kit:kit /kit /opt/llm-kit-cache
USER kit
WORKDIR /kit

# Only what the install needs: no .env, no local .venv, no work folders.
COPY --chown=kit:kit pyproject.toml Makefile README.md ./
COPY --chown=kit:kit helpers ./helpers

# The same targets `make workshop` depends on, run now so that at start-up make finds the
# virtualenv (its stamp is newer than pyproject.toml) and the cached llama-server.
RUN make setup
RUN make llama

EXPOSE 8888
CMD ["make", "workshop"]
