"""`stresswatch scan`: the heart-rate straps and foot pods nearby (collector/ble.py `scan`), one
line each, as a person choosing a strap for `[[devices]]` reads them."""

from __future__ import annotations

import asyncio
import sys

from stresswatch.command import EXIT_BAD_INPUT, EXIT_NOT_DONE, EXIT_OK

# `scan --details`: what `sends_rr` means for the person choosing a strap.
SENDS_RR_SAYS = {
    True: "True",
    False: "False (heart rate only: no HRV or stress state from this strap)",
    None: "unknown (no heart rate came: is the strap worn, with moist electrodes?)",
}
SHOWN = ("manufacturer", "model", "firmware", "battery_pct", "hr_bpm", "sends_energy", "motion")


def scan(args) -> int:
    """Exit 0 when something was found, 1 when nothing was, 2 when Bluetooth is not usable here."""
    from collector.ble import BluetoothUnavailable
    from collector.ble import scan as scan_bluetooth

    try:
        rows = asyncio.run(scan_bluetooth(args.timeout, args.details, args.adapter))
    except BluetoothUnavailable as exc:
        print(f"stresswatch: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not rows:
        print("no heart-rate wearables found (is the strap worn, and not connected to a phone?)")
        return EXIT_NOT_DONE
    for row in rows:
        extra = "".join(f"  {k} {row[k]}" for k in SHOWN if k in row)
        if "sends_rr" in row:
            extra += "  sends_rr " + SENDS_RR_SAYS[row["sends_rr"]]
        if "error" in row:
            extra += f"  error {row['error']}"
        print(f"{row['address']}  {row['rssi']:>4} dBm  {row['name'] or '(no name)'}{extra}")
    print('\nadd one to the config as [[devices]] with address = "..." and the person who wears it')
    return EXIT_OK
