# The workshop's lab image: the kit, its virtualenv and the offline model. The model server is
# llama.cpp's own, prebuilt in the xllamacpp wheel (no compiler). docker-compose.yml builds this
# image once (for `llama-cpu`) and runs it as `lab`, `lab-cpu` and `llama-cpu`; on its own:
#   docker build -t llm-streaming-kit-lab . && docker run --rm -p 127.0.0.1:8888:8888 \
#       -e JUPYTER_TOKEN=change-me llm-streaming-kit-lab
FROM python:3.11-slim-bookworm

# make runs the kit's commands; nothing here compiles.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

ENV KIT_CACHE_DIR=/opt/llm-kit-cache \
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
COPY --chown=kit:kit pyproject.toml Makefile README.md nbgrader_config.py ./
COPY --chown=kit:kit helpers ./helpers
COPY --chown=kit:kit llm_kit ./llm_kit

# The target `make workshop` depends on, run now so that at start-up make finds the virtualenv
# (its stamp is newer than pyproject.toml) and the model already checked.
RUN make setup

EXPOSE 8888
CMD ["make", "workshop"]
