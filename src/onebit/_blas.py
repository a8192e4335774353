"""Load the OpenBLAS library the engine's float GEMM links (scipy-openblas32) before ``_C`` is imported.

``_C`` finds it by rpath when onebit and scipy-openblas32 sit in one site-packages; loading it here
first also covers other layouts (the dynamic loader reuses an already loaded library of the same
soname). A build without OpenBLAS (the C++ fallback) needs none of this: a missing package is fine.
"""

from __future__ import annotations

import ctypes
import os


def preload() -> None:
    try:
        import scipy_openblas32 as sob
    except ImportError:
        return
    path = os.path.join(sob.get_lib_dir(), f"lib{sob.get_library()}.so")
    if os.path.exists(path):
        ctypes.CDLL(path)


preload()
