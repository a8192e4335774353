"""Export: capture an eval-mode model, fold and pack it into a ``.onebit`` file; the reference executor.

``onebit.export.export(model, example_input) -> bytes`` and ``onebit.export.save(model, x, path)``;
``onebit.export.reference.run(file, x)`` executes a file with plain torch ops (the spec of each op).
"""

from .capture import ExportError
from .converter import export, load, save
from .format import FORMAT_VERSION, ModelFile, ModelFileError, read_model, write_model
from .graph import validate
from . import reference

__all__ = ["FORMAT_VERSION", "ExportError", "ModelFile", "ModelFileError", "export", "load", "read_model",
           "reference", "save", "validate", "write_model"]
