"""Which listed entries can be read, and why the others cannot: every entry becomes an input or a row.

One entry Ray could not open (a dangling symlink, a FIFO, a name with a newline) used to stop the whole job
before any photo was processed. Here every entry is looked at with `lstat`/`stat` first — opening a FIFO
blocks forever and opening a device may hang or stream without end — and an unreadable one is carried
as an input with a problem, which the job turns into a `read_error` row naming the cause.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import Counter
from dataclasses import dataclass
from typing import Any

from idphoto_ray.types import Documented

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif")


class ReadProblem(Documented):
    """Why an input entry cannot be read: the start of a `read_error` row's message (`cause: detail`)."""

    MISSING = ("missing", "The path does not exist.")
    DANGLING_LINK = ("dangling_symlink", "A symbolic link whose target does not exist.")
    LINK_LOOP = ("symlink_loop", "A symbolic link that leads back to itself.")
    NOT_REGULAR = ("not_a_regular_file", "A FIFO, socket, device or folder: never opened.")
    PERMISSION = ("permission_denied", "The file exists but this process may not read it.")
    VANISHED = ("vanished", "The file was listed but was gone or replaced when its bytes were read.")
    UNREADABLE = ("unreadable", "The operating system or the store refused the read (see the detail).")


class UnreadableEntry(Exception):
    """An entry whose bytes cannot be read; becomes a `read_error` row, never a failed job."""

    def __init__(self, problem: ReadProblem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class Entry:
    """One listed entry: `rel` is its path relative to the listed root; `problem` None when readable."""

    path: str
    rel: str
    problem: ReadProblem | None = None
    detail: str = ""


@dataclass
class Listing:
    """Entries that are inputs (readable or not) and the count of files skipped, by extension."""

    entries: list[Entry]
    skipped: Counter

    def skipped_line(self) -> str:
        return skipped_line(self.skipped)


def is_image_name(path: str) -> bool:
    base = posixpath.basename(path)
    return "." in base and base.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS


def extension_of(path: str) -> str:
    """`.pdf`, or `(none)` for names without one: the key of the skipped-files count."""
    base = posixpath.basename(path)
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else "(none)"


def skipped_line(skipped: Counter) -> str:
    """`3 files skipped: .pdf ×2, .svg`, or an empty string when nothing was skipped."""
    total = sum(skipped.values())
    if not total:
        return ""
    ordered = sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [ext if n == 1 else f"{ext} ×{n}" for ext, n in ordered]
    return f"{total} file{'s' if total != 1 else ''} skipped: {', '.join(parts)}"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def check_local(path: str) -> tuple[ReadProblem, str] | None:
    """The problem with a local path, found without opening it; None for a readable regular file."""
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return ReadProblem.MISSING, "no such file"
    except PermissionError as exc:
        return ReadProblem.PERMISSION, exc.strerror or "permission denied"
    except OSError as exc:
        return ReadProblem.UNREADABLE, exc.strerror or str(exc)
    try:
        target = os.stat(path)
    except FileNotFoundError:
        return ReadProblem.DANGLING_LINK, f"points at {os.readlink(path)!r}, which does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return ReadProblem.LINK_LOOP, "too many levels of symbolic links"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return ReadProblem.PERMISSION, exc.strerror or "permission denied"
        return ReadProblem.UNREADABLE, exc.strerror or str(exc)
    if not stat.S_ISREG(target.st_mode):
        via = " (via a symbolic link)" if stat.S_ISLNK(link.st_mode) else ""
        return ReadProblem.NOT_REGULAR, f"a {_kind(target.st_mode)}{via}"
    if not os.access(path, os.R_OK):
        return ReadProblem.PERMISSION, "not readable by this user"
    return None


def walk_local(root: str) -> Listing:
    """Every entry under a local folder, sorted; symlinked folders are followed once (loops end there)."""
    entries: list[Entry] = []
    skipped: Counter = Counter()
    seen_dirs: set[tuple[int, int]] = set()
    root = root.rstrip("/") or "/"

    def visit(folder: str) -> None:
        try:
            info = os.stat(folder)
        except OSError:
            return
        if (info.st_dev, info.st_ino) in seen_dirs:
            return
        seen_dirs.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            rel = posixpath.relpath(folder, root)
            problem = ReadProblem.PERMISSION if isinstance(exc, PermissionError) else ReadProblem.UNREADABLE
            entries.append(Entry(folder, rel, problem, f"folder cannot be listed: {exc.strerror or exc}"))
            return
        for child in children:
            path = posixpath.join(folder, child.name)
            try:
                is_dir = child.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                visit(path)
                continue
            if not is_image_name(child.name):
                skipped[extension_of(child.name)] += 1
                continue
            found = check_local(path)
            rel = posixpath.relpath(path, root)
            entries.append(Entry(path, rel, *found) if found else Entry(path, rel))

    visit(root)
    entries.sort(key=lambda e: e.path)
    return Listing(entries, skipped)


def check_remote(fs: Any, path: str) -> tuple[ReadProblem, str] | None:
    """The problem with an object-store path (one HEAD); stores hold only regular objects."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return ReadProblem.MISSING, "no such object"
    except PermissionError as exc:
        return ReadProblem.PERMISSION, str(exc) or "access denied"
    except OSError as exc:
        return ReadProblem.UNREADABLE, str(exc)
    if info.get("type") == "directory":
        return ReadProblem.NOT_REGULAR, "a folder"
    return None


def read_entry(fs: Any, path: str, local: bool) -> bytes:
    """The bytes of one listed input, or UnreadableEntry naming why not; never blocks on a FIFO.

    Locally the file is opened non-blocking and checked to be regular *after* opening too, so an entry
    swapped for a FIFO between listing and reading is refused instead of waited on.
    """
    if not local:
        try:
            return fs.cat_file(path)
        except FileNotFoundError as exc:
            raise UnreadableEntry(ReadProblem.VANISHED, "gone since listing") from exc
        except PermissionError as exc:
            raise UnreadableEntry(ReadProblem.PERMISSION, str(exc) or "access denied") from exc
        except OSError as exc:
            raise UnreadableEntry(ReadProblem.UNREADABLE, str(exc)) from exc
    found = check_local(path)
    if found:
        problem, detail = found
        if problem in (ReadProblem.MISSING, ReadProblem.DANGLING_LINK):
            problem, detail = ReadProblem.VANISHED, f"gone since listing ({detail})"
        raise UnreadableEntry(problem, detail)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise UnreadableEntry(ReadProblem.VANISHED, "gone since listing") from exc
    except PermissionError as exc:
        raise UnreadableEntry(ReadProblem.PERMISSION, exc.strerror or "permission denied") from exc
    except OSError as exc:
        raise UnreadableEntry(ReadProblem.UNREADABLE, exc.strerror or str(exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableEntry(ReadProblem.VANISHED, f"replaced by a {_kind(mode)} since listing")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError as exc:
        raise UnreadableEntry(ReadProblem.UNREADABLE, exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
