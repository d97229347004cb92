"""Putting the stand-ins on ``sys.modules`` for one test, and taking them off again."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._gpu import DeviceSpec, EmulatedGpu

HERE = Path(__file__).resolve().parent

# Jetson AGX Orin 32GB; Orin NX/Nano report the same name and SM 8.7 with fewer SMs, less memory
ORIN = DeviceSpec("Orin (nvgpu)", (8, 7), 30 << 30, dla_cores=2, multiprocessors=14)
RTX3060 = DeviceSpec("NVIDIA GeForce RTX 3060", (8, 6), 12 << 30, multiprocessors=28)
H200 = DeviceSpec("NVIDIA H200", (9, 0), 141 << 30, multiprocessors=132)


@dataclass
class Controls:
    """Faults a test can switch on (what real hardware or TensorRT would do now and then)."""

    fail_executes: int = 0  # the next N execute_async_v3 calls log an error and return False
    fail_addresses: int = 0  # the next N set_tensor_address calls log an error, return False
    reject_deserialize: int = 0  # the next N deserialize_cuda_engine calls return None
    build_delay_s: float = 0.0  # a slower build, to make concurrent opens overlap
    build_calls: int = 0  # counted by the stand-in: build_serialized_network calls
    deserialize_calls: int = 0


@dataclass(frozen=True)
class Flavour:
    """One emulated TensorRT: ``version`` (``tensorrt.__version__``) and the machine."""

    version: str
    devices: tuple[DeviceSpec, ...]
    controls: Controls = field(default_factory=Controls, compare=False)

    def with_devices(self, *devices: DeviceSpec) -> Flavour:
        return replace(self, devices=tuple(devices), controls=Controls())


FLAVOURS = {
    # TensorRT 8.6 on an x86 GPU (pip tensorrt 8.6.1): EXPLICIT_BATCH required, no strong typing.
    "8.6.1": Flavour("8.6.1", (RTX3060,)),
    # TensorRT 10.3 as JetPack 6.1/6.2 ships it on Orin: weakly typed builds, 2 DLA cores.
    "10.3.0": Flavour("10.3.0", (ORIN,)),
    # TensorRT 10.13 on a datacenter GPU: strongly typed builds (the project's choice from 10.12).
    "10.13.0": Flavour("10.13.0", (H200,)),
    # TensorRT 11.1 on the same datacenter GPU (there is no Jetson spec for an 11.x here): strongly
    # typed whatever the flags, no precision builder flags, no INT8 calibrator.
    "11.1.0": Flavour("11.1.0", (H200,)),
}


def load_fresh(name: str, path: Path, inject: dict[str, Any],
               package: bool = False) -> types.ModuleType:
    """A new module object called ``name`` executed from ``path`` with ``inject`` preset in
    its globals (the stand-in modules refuse to load without them)."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(inject)
    spec.loader.exec_module(module)
    return module


@dataclass
class Installed:
    trt: types.ModuleType  # "tensorrt"
    cuda: types.ModuleType  # "pycuda.driver"
    pycuda: types.ModuleType  # "pycuda"
    gpu: EmulatedGpu
    flavour: Flavour

    @property
    def controls(self) -> Controls:
        return self.flavour.controls


def build(flavour: Flavour) -> Installed:
    """Fresh ``tensorrt``, ``pycuda`` and ``pycuda.driver`` modules sharing one emulated GPU."""
    flavour = replace(flavour, controls=Controls())
    gpu = EmulatedGpu(list(flavour.devices))
    inject = {"_STANDIN_GPU": gpu}
    pycuda = load_fresh("pycuda", HERE / "pycuda" / "__init__.py", inject, package=True)
    driver = load_fresh("pycuda.driver", HERE / "pycuda" / "driver.py", inject)
    pycuda.driver = driver  # type: ignore[attr-defined]
    trt = load_fresh("tensorrt", HERE / "tensorrt" / "__init__.py",
                     {**inject, "_STANDIN_FLAVOUR": flavour})
    return Installed(trt, driver, pycuda, gpu, flavour)


def install(monkeypatch: Any, flavour: Flavour | str) -> Installed:  # noqa: ANN401 - MonkeyPatch
    """Builds the stand-ins and puts them on ``sys.modules`` through ``monkeypatch``, so pytest
    takes them off again after the test; ``importlib.util.find_spec`` answers for them too."""
    fl = FLAVOURS[flavour] if isinstance(flavour, str) else flavour
    inst = build(fl)
    modules = {"tensorrt": inst.trt, "pycuda": inst.pycuda, "pycuda.driver": inst.cuda}
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:  # noqa: ANN401 - ModuleSpec
        if name in modules:
            return modules[name].__spec__
        return real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return inst

