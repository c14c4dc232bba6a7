"""spanline: a streaming trace and event pipeline for LLM workflow executions."""

__version__ = "0.1.0"
