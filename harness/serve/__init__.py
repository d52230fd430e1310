"""OpenAI-compatible serving of harness variants (``python -m harness serve``)."""
