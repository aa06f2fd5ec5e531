"""A segmenter's graph cut down to the one output the mask is read from, made once per model file.

ONNX Runtime runs every node of a graph whatever outputs a call asks for. IS-Net's export returns the mask
and 11 side outputs (five more upsampled, sigmoid maps and six decoder features); U²-Net's returns seven
maps. Without the nodes that only feed those, IS-Net's call took 0.92 s instead of 0.995 s (medians of 8,
interleaved, 2 threads, 2026-12-02): about 8 % of a CPU job's time, for the same mask (largest difference
4e-4, below one uint8 step). U²-Net's side maps are small (320²): 316 → 314 ms.

The cut is made with the `onnx` package where the model file is resolved (the job's driver, `models fetch`,
a service replica) and cached in the model home under `derived/`, keyed by the file's sha256 (IS-Net: 1.1 s
once). Actors receive the cut bytes and never import `onnx` (1.4 s of CPU). Graphs with one output are used
as they are. The weights' identity a run records (`config_hash`, run.json) stays the sha256 of the file the
user fetched, not of this derived one.

A cached cut is read back only if its bytes still hash to the sha256 written beside it (0.05 s for IS-Net's
88 MB): a cut truncated on disk killed every job's segmentation actor with a 200-line ONNX Runtime
traceback until someone found `derived/`; now it is cut again, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from idphoto_ray.atomic import atomic_write_bytes
from idphoto_ray.models.home import model_home, record_sha256, recorded_sha256

log = logging.getLogger(__name__)

#: Folder in the model home for derived graphs; a file per source sha256 and output index.
DERIVED = "derived"


def cut_to_output(model: bytes, output_index: int) -> bytes | None:
    """`model` (ONNX bytes) with only graph output `output_index` and the nodes and weights it needs; None
    when the graph has one output already (nothing to cut).

    Nodes keep their order: third-party exports (IS-Net's) list nodes out of topological order, which
    ONNX Runtime accepts and sorts itself, so the walk repeats until nothing more is found.
    """
    import onnx

    graph_model = onnx.load_from_string(model)
    graph = graph_model.graph
    if len(graph.output) <= 1:
        return None
    wanted = graph.output[output_index]
    needed = {wanted.name}
    nodes = list(graph.node)
    live = [False] * len(nodes)
    found = True
    while found:
        found = False
        for i, node in enumerate(nodes):
            if not live[i] and any(name in needed for name in node.output):
                live[i] = found = True
                needed.update(name for name in node.input if name)
    kept_nodes = [node for node, keep in zip(nodes, live, strict=True) if keep]
    kept_weights = [w for w in graph.initializer if w.name in needed]
    kept_info = [v for v in graph.value_info if v.name in needed]
    output = onnx.ValueInfoProto()
    output.CopyFrom(wanted)
    del graph.node[:], graph.initializer[:], graph.value_info[:], graph.output[:]
    graph.node.extend(kept_nodes)
    graph.initializer.extend(kept_weights)
    graph.value_info.extend(kept_info)
    graph.output.append(output)
    return graph_model.SerializeToString()


def mask_graph(path: Path, sha256: str, output_index: int, home: Path | None = None) -> bytes:
    """The bytes a segmenter session should load for the model file at `path` (whose sha256 is given):
    the graph cut to output `output_index`, made once and cached; the file's own bytes when it has one
    output or the cut cannot be made (logged: the job still runs, only slower)."""
    folder = (home or model_home()) / DERIVED
    derived = folder / f"{sha256}.out{output_index}.onnx"
    whole = folder / f"{sha256}.whole"
    if derived.is_file():
        cached, recorded = derived.read_bytes(), recorded_sha256(derived)
        if recorded == hashlib.sha256(cached).hexdigest():
            return cached
        if recorded is not None:  # none: cached before the checks existed, or cut off before its check
            log.warning("the cached cut graph %s is damaged; cutting %s again", derived, path.name)
    data = path.read_bytes()
    if whole.is_file():
        return data
    try:
        cut = cut_to_output(data, output_index)
    except Exception as exc:  # noqa: BLE001 - an odd graph is run whole, as before
        log.warning("could not cut %s to its mask output (%r); running the whole graph", path.name, exc)
        return data
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if cut is None:
            atomic_write_bytes(whole, b"")
        else:  # the graph first: a graph left without its check is cut again
            atomic_write_bytes(derived, cut)
            record_sha256(derived, hashlib.sha256(cut).hexdigest())
    except OSError as exc:  # a read-only or full model home: cut again next time, run now
        log.warning("could not cache the cut graph of %s in %s (%s)", path.name, folder, exc)
    return data if cut is None else cut
