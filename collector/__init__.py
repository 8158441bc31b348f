"""Where beats come from: BLE heart-rate straps, recorded files and the simulator."""
