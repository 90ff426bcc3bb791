"""The offline backend: llama.cpp's llama-server serving SmolLM2-135M-Instruct on 127.0.0.1."""

from .build import ensure_llama_server
from .model import find_model
from .server import ServerStatus, server_status, start_server, stop_server

__all__ = ["ServerStatus", "ensure_llama_server", "find_model", "server_status", "start_server",
           "stop_server"]
