"""The offline backend: llama.cpp's server (xllamacpp wheel) serving SmolLM2-135M-Instruct."""

from .model import find_model, verified_model
from .server import ServerStatus, server_status, start_server, stop_server

__all__ = ["ServerStatus", "find_model", "server_status", "start_server", "stop_server",
           "verified_model"]
