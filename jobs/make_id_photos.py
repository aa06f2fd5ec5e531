"""Entry point for `ray job submit --working-dir . -- python jobs/make_id_photos.py --config configs/x.yaml`.

Connects to the cluster in RAY_ADDRESS (set by `ray job submit`), else starts a local Ray.
Takes the same flags as `idphoto-ray run`.
"""

from __future__ import annotations

import sys

from idphoto_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
