"""ament_python package: installs the node, launch/, config/ and engines/ under share/."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "seg_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    # The TensorRT conformance tables travel with the code that reads them.
    package_data={f"{PACKAGE}.inference.tensorrt": ["trt_rules/*.json", "trt_rules/README.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/engines", [f for f in glob("engines/*") if not f.endswith(".md")
                                      and not f.endswith("cache")]),
        (f"share/{PACKAGE}/data/camvid_sample", glob("data/camvid_sample/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="seg_perception maintainers",
    maintainer_email="seg-perception@example.com",
    description="Real-time semantic segmentation node with drivable-area and obstacle masks.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"segmentation_node = {PACKAGE}.node:main",
            f"seg-perception = {PACKAGE}.cli:main",
        ],
    },
)
