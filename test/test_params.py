"""The parameter table is the one source: the YAML and the README agree with it, validation
checks every entry's type and limits, and every NodeConfig field comes from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from seg_perception.core.classes import CAMVID
from seg_perception.core.errors import ConfigError
from seg_perception.node.config import NodeConfig, checked, validate
from seg_perception.node.params import BY_NAME, FROM_MODEL, OUTPUTS, PARAMETERS, markdown_table

ROOT = Path(__file__).resolve().parent.parent
WRONG_TYPE = {"bool": "yes", "int": 2.5, "float": "fast", "str": 3, "int[]": "360x480",
              "float[]": [1.0, "a"], "str[]": "Road"}


def shipped_yaml() -> dict:
    doc = yaml.safe_load((ROOT / "config" / "segmentation.yaml").read_text())
    return doc["/**"]["ros__parameters"]


def test_yaml_lists_every_parameter_with_its_default():
    params = shipped_yaml()
    assert set(params) == set(BY_NAME)
    for name, value in params.items():
        prm = BY_NAME[name]
        if prm.default is FROM_MODEL:
            group = CAMVID.drivable if name == "drivable_classes" else CAMVID.obstacles
            assert value == list(group), name
        else:
            assert prm.check(value) == prm.default, name


def test_readme_holds_the_generated_table():
    assert markdown_table() in (ROOT / "README.md").read_text(), (
        "README's parameter table differs from the table: paste "
        "`python -m seg_perception.node.params`")


def test_every_parameter_lands_in_a_config_field_and_back():
    """A parameter added to the table but not to NodeConfig (or the reverse) fails here."""
    lands = {"drivable_classes": "drivable_ids", "obstacle_classes": "obstacle_ids",
             **{f"publish_{o}": "outputs" for o in OUTPUTS}}
    assert {lands.get(p.name, p.name) for p in PARAMETERS} == {
        f.name for f in dataclasses.fields(NodeConfig)}


def test_defaults_validate():
    cfg = validate({}, CAMVID)
    assert cfg.drivable_ids == tuple(CAMVID.ids_of(CAMVID.drivable))
    assert cfg.outputs == {"mask", "color", "drivable", "obstacles"}


@pytest.mark.parametrize("prm", PARAMETERS, ids=lambda p: p.name)
def test_wrong_type_names_the_parameter_and_the_type(prm):
    with pytest.raises(ConfigError, match=f"parameter '{prm.name}': must be ") as err:
        validate({prm.name: WRONG_TYPE[prm.kind]}, CAMVID)
    assert err.value.param == prm.name


@pytest.mark.parametrize("prm", [p for p in PARAMETERS if p.min is not None or p.choices],
                         ids=lambda p: p.name)
def test_limits_and_choices_are_enforced(prm):
    if prm.choices:
        bad: object = "no-such-choice"
    else:
        below = prm.min - 1 if prm.kind.startswith("int") else prm.min / 2 - 1
        bad = [type(prm.default[0])(below)] * len(prm.default) \
            if isinstance(prm.default, list) else (int(below) if prm.kind == "int" else below)
    with pytest.raises(ConfigError, match=f"parameter '{prm.name}'"):
        validate({prm.name: bad}, CAMVID)


def test_bools_are_not_numbers():
    """YAML's `threads: true` is a bool, not 1."""
    with pytest.raises(ConfigError, match="'threads': must be an integer"):
        checked({"threads": True}, CAMVID)


def test_only_overlay_alpha_changes_at_run_time():
    """The node re-reads only these while running; the rest are read-only."""
    assert [p.name for p in PARAMETERS if p.dynamic] == ["overlay_alpha"]


def test_backend_options_carry_their_name(tiny_onnx):
    """The node names the parameter a backend refused from the error itself, not its text."""
    from seg_perception.core.errors import OptionError, SegPerceptionError
    from seg_perception.inference.factory import create_backend

    for kw, option in (({"threads": 0}, "threads"), ({"precision": "bf16"}, "precision"),
                       ({"backend": "cuda"}, "backend"),
                       ({"backend": "onnxruntime", "dla_core": 0}, "dla_core")):
        with pytest.raises(OptionError) as err:
            create_backend(tiny_onnx, **kw).close()  # type: ignore[arg-type]
        assert err.value.option == option, kw
        assert isinstance(err.value, SegPerceptionError) and isinstance(err.value, ValueError)
    from seg_perception.inference.segmenter import Segmenter

    b = create_backend(tiny_onnx)
    with pytest.raises(OptionError) as err:
        Segmenter(b, (8, 8))
    b.close()
    assert err.value.option == "input_size"


def test_a_file_that_is_no_model_is_a_model_error(tmp_path):
    from seg_perception.core.errors import ModelError
    from seg_perception.inference.modelinfo import read_model_info

    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError) as err:
        read_model_info(bad)
    assert err.value.path == bad


def test_cli_overrides_are_read_from_the_ros_arguments():
    from seg_perception.node.params import cli_overrides

    argv = ["node", "-p", "threads:=9", "--ros-args", "-p", "threads:=abc", "-r", "a:=b",
            "--param", "segmentation_node:publish_mask:=false", "-p", "other:grid_frame:=x",
            "--params-file", "f.yaml", "--", "-p", "threads:=7", "--ros-args",
            "-p", "segmentation_node:input_size:=[1, 2]", "-p", "broken"]
    assert cli_overrides(argv, ["/segmentation_node"]) == {
        "threads": "abc", "publish_mask": "false", "input_size": "[1, 2]"}
    # In a namespace the node's name is /robot/segmentation_node: rclpy ignores these.
    assert cli_overrides(argv, ["/robot/segmentation_node"]) == {"threads": "abc"}


@pytest.mark.parametrize(("name", "text", "effective", "taken"), [
    ("threads", "3", 3, True),
    ("threads", "3", 2, False),  # the params file's value kept
    ("max_frame_age", "1", 1.0, True),  # an integer number of seconds
    ("publish_mask", "false", False, True),
    ("publish_mask", "1", True, None),  # not a bool: ConfigError
    ("publish_mask", "y", True, True),  # rcl's own bool spelling
    ("max_frame_age", "1e-1", 0.1, True),  # strtod reads it; YAML 1.1 does not
    ("diagnostics_period", "1.5e1", 15.0, True),
    ("grid_frame", "yes", "yes", True),  # a string YAML would read as a bool
    ("image_topic", "/cam/image", "/cam/image", True),
    ("drivable_classes", "[Road, Sidewalk]", ["Road", "Sidewalk"], True),
    ("camera_pose", "[0.0, 0.0, 1.5, 0.0, 0.1, 0.0]", [0.0, 0.0, 1.5, 0.0, 0.1, 0.0], True),
])
def test_an_override_is_taken_or_named(name, text, effective, taken):
    from seg_perception.node.params import override_taken

    if taken is None:
        with pytest.raises(ConfigError, match=f"parameter '{name}'"):
            override_taken(BY_NAME[name], text, effective)
    else:
        assert override_taken(BY_NAME[name], text, effective) is taken
