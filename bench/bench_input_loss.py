"""Input frames lost between a camera publisher and the node, by input QoS and Fast DDS profile.

Each run replays a bag live into the node (``seg-perception evaluate --live``, a fresh process,
so each gets its own Fast DDS profile) and reads the node's own counters from metrics.json:
``received`` plus ``never_seen`` (header-stamp gaps) is what the camera sent. ``stock``: Fast
DDS's defaults (512 KB shared-memory segment, larger frames over UDP), as with a camera driver
that does not load the project's profile; ``shipped``: config/fastdds_shm.xml on both ends.

    python bench/bench_input_loss.py --bag BAG [--rounds 2] [--rate 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOCK = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <participant profile_name="stock" is_default_profile="true"><rtps/></participant>
  </profiles>
</dds>
"""


def run(bag: Path, qos: str, profile: Path, rate: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "seg_perception", "evaluate", "--bag", str(bag), "--live",
           "--qos-reliability", qos, "--fastdds-profile", str(profile), "--rate", str(rate),
           "--out", str(out), "--overlays", "0", "--threads", "1"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    m = json.loads((out / "metrics.json").read_text())
    return {"frames": m["frames"], **{k: m["node_counters"].get(k, 0) for k in
                                      ("received", "never_seen", "lost", "dropped",
                                       "published")}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bag", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=30.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stock = Path(tmp) / "stock.xml"
        stock.write_text(STOCK)
        profiles = {"stock": stock, "shipped": ROOT / "config" / "fastdds_shm.xml"}
        print(f"{'profile':<8} {'input QoS':<12} {'round':>5} {'sent':>5} {'received':>9} "
              f"{'never seen':>10} {'lost':>5} {'dropped':>8} {'published':>9}")
        for r in range(args.rounds):  # interleaved, so drift hits every setting alike
            for name, prof in profiles.items():
                for qos in ("best_effort", "reliable"):
                    c = run(args.bag, qos, prof, args.rate, Path(tmp) / f"{name}-{qos}-{r}")
                    print(f"{name:<8} {qos:<12} {r + 1:>5} {c['frames']:>5} {c['received']:>9} "
                          f"{c['never_seen']:>10} {c['lost']:>5} {c['dropped']:>8} "
                          f"{c['published']:>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
