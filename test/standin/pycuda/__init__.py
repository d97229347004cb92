"""Stand-in for the ``pycuda`` package (tests only): just what ``import pycuda.driver`` needs.

Loaded only by ``standin.install`` under the name ``pycuda``; ``driver`` is set on it there.
Names checked against pycuda tag v2025.1.2 (42cd5a0caf8559d9e51e9611dd480c481dc735f0),
``pycuda/__init__.py`` (VERSION, VERSION_STATUS, VERSION_TEXT).
"""

from __future__ import annotations

try:
    _STANDIN_GPU  # type: ignore[name-defined]  # noqa: B018, F821 - injected by install()
except NameError:
    raise ImportError("the pycuda stand-in is only loaded by the test fixture "
                      "(standin.install)") from None

VERSION = (2025, 1, 2)
VERSION_STATUS = ""
VERSION_TEXT = ".".join(str(x) for x in VERSION) + VERSION_STATUS
