"""Where frames come from offline: CamVid-layout folders and rosbag2 recordings."""
