"""What exercises' tests use: a kernel-wide record of chat-model calls and reference data."""
