"""Which Fast DDS profile variable the running ROS 2 reads: one rule for every caller.

Fast DDS 2.x (Humble, Iron, Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE``; Fast DDS 3
(Kilted and later) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and warns on every start when the old
name is set too. Setting both also loads the profile twice, which Fast DDS reports as "There is
other transport with the same id". So exactly one is set.
"""

from __future__ import annotations

import os
from importlib import metadata

FASTDDS = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTRTPS = "FASTRTPS_DEFAULT_PROFILES_FILE"
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")
OFF = ("none", "off", "false", "0")
"""Launch-argument values that turn the profile off (``ros2 launch`` rejects an empty value)."""


def profile_variable(distro: str | None = None) -> str:
    """The variable for ``distro`` (default ``$ROS_DISTRO``; without one, the installed wheels)."""
    name = (os.environ.get("ROS_DISTRO", "") if distro is None else distro).strip().lower()
    if name:
        return FASTRTPS if name in FAST_DDS_2_DISTROS else FASTDDS
    for dist, var in (("ros-fastdds", FASTDDS), ("ros-fastrtps", FASTRTPS)):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return FASTDDS if int(version.split(".")[0]) >= 3 else var
    return FASTDDS


def profile_env(profile: str, distro: str | None = None) -> dict[str, str]:
    """{variable: profile} to set, or {} when the profile is turned off."""
    if not profile or profile.strip().lower() in OFF:
        return {}
    return {profile_variable(distro): profile}
