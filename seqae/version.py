"""The version of seqae (read by pyproject.toml and written into exports)."""

__version__ = "0.1.0"
