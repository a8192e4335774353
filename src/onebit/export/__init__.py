"""Export: the ``.onebit`` model file (and, as it lands, capture, folding and packing)."""

from .format import FORMAT_VERSION, ModelFile, ModelFileError, read_model, write_model

__all__ = ["FORMAT_VERSION", "ModelFile", "ModelFileError", "read_model", "write_model"]
