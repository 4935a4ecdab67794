"""Check a device data file and print what the LUT models take from it.

python -m txsim_lut_device my_device.csv      # no argument: the bundled (synthetic) example
"""

from __future__ import annotations

import sys

from txsim_core.errors import ConfigError
from txsim_lut_device.measurement import load_device_data


def main(argv: list[str] | None = None) -> int:
    """Print the summary of each file named (or of the example); 1 if one is invalid."""
    paths: list[str | None] = list(sys.argv[1:] if argv is None else argv) or [None]
    status = 0
    for path in paths:
        try:
            print(load_device_data(path).summary())
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
