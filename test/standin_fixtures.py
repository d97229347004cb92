"""The ``trt_standin`` fixture: the TensorRT and pycuda stand-ins on ``sys.modules`` for one test.

Import ``trt_standin_fixture`` into a test module, use the fixture as ``trt_standin`` and pick
the flavour with indirect parametrisation::

    @pytest.mark.parametrize("trt_standin", ["8.6.1", "10.13.0"], indirect=True)
    def test_x(trt_standin): ...

(a ``standin.Flavour`` works too, e.g. ``FLAVOURS["10.3.0"].with_devices(...)``). Without a
parameter it is the 10.3 flavour. Everything is undone after the test by ``monkeypatch``.
"""

from __future__ import annotations

import pytest
from standin import FLAVOURS, install
from standin.install import Installed


@pytest.fixture(name="trt_standin")
def trt_standin_fixture(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> Installed:
    flavour = getattr(request, "param", "10.3.0")
    return install(monkeypatch, FLAVOURS[flavour] if isinstance(flavour, str) else flavour)
