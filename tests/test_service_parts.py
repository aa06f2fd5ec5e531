"""The service's Ray-free parts: which URIs a job may name, download links, and the segmenter gate."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from idphoto_ray.service.gate import SegmentGate
from idphoto_ray.service.links import LinkState, LinkStore, file_name
from idphoto_ray.service.roots import RootRefused, check_uri
from idphoto_ray.service.settings import ServiceSettings


def _refused(uri: str, roots: list[str]) -> int:
    with pytest.raises(RootRefused) as caught:
        check_uri(uri, roots)
    return caught.value.status


# --- allowed roots ------------------------------------------------------------------------------------------


def test_uri_jobs_are_off_by_default():
    settings = ServiceSettings()
    assert settings.allowed_roots == []
    with pytest.raises(RootRefused) as caught:
        check_uri("/tmp", settings.allowed_roots)
    assert caught.value.status == 403 and "allowed_roots" in str(caught.value)


def test_local_uris_under_a_root_are_resolved(tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    real = os.path.realpath(root)
    assert check_uri(str(root / "in"), [str(root)]) == f"{real}/in"
    assert check_uri(f"file://{root}/in/", [f"file://{root}"]) == f"{real}/in"
    assert check_uri(f"{root}/./in//", [str(root)]) == f"{real}/in"
    assert check_uri(str(root / "not" / "yet"), [str(root)]) == f"{real}/not/yet"  # an output to create
    assert check_uri(str(root), [str(root)]) == real


def test_local_uris_outside_every_root_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "root-b").mkdir()
    assert _refused(str(tmp_path / "root-b"), [str(root)]) == 403  # a sibling sharing the name's prefix
    assert _refused("/etc", [str(root)]) == 403
    assert _refused(str(tmp_path), [str(root)]) == 403
    assert _refused("in", [str(root)]) == 422  # relative: the server's working directory is nobody's root


def test_dot_dot_is_refused_even_when_it_would_stay_inside(tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    assert _refused(f"{root}/in/../../etc", [str(root)]) == 422
    assert _refused(f"{root}/in/../in", [str(root)]) == 422
    assert _refused(f"file://{root}/..", [str(root)]) == 422


def test_a_symlink_leading_out_of_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "in").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "alias").symlink_to(root / "in")
    assert _refused(str(root / "escape"), [str(root)]) == 403
    assert _refused(str(root / "escape" / "out"), [str(root)]) == 403
    assert check_uri(str(root / "alias"), [str(root)]) == os.path.realpath(root / "in")


def test_bucket_uris_need_the_same_scheme_bucket_and_prefix():
    roots = ["s3://photos/school-a", "/srv/photos"]
    assert check_uri("s3://photos/school-a/class-3/", roots) == "s3://photos/school-a/class-3"
    assert check_uri("S3://photos/school-a", roots) == "s3://photos/school-a"
    assert _refused("s3://photos/school-b", roots) == 403
    assert _refused("s3://photos/school-ab", roots) == 403
    assert _refused("s3://other/school-a", roots) == 403
    assert _refused("gs://photos/school-a", roots) == 403
    assert _refused("/photos/school-a", roots) == 403
    assert _refused("s3://srv/photos", roots) == 403  # a bucket named like a local root is not that root
    assert _refused("s3://photos/school-a/../school-b", roots) == 422


@pytest.mark.parametrize(
    "uri",
    [
        "s3://photos/school-a/x?endpoint_override=evil.example",  # the server's keys sent elsewhere
        "s3://key:secret@photos/school-a/x",
        "s3://photos:9000/school-a/x",
        "simplecache::s3://photos/school-a/x",
        "s3://photos/school-a/%2e%2e/school-b",
        "s3://photos/school-a/*",
        "s3://photos/school-a/x#frag",
        "",
    ],
)
def test_anything_more_than_a_plain_path_is_refused(uri):
    assert _refused(uri, ["s3://photos/school-a"]) == 422


def test_settings_refuse_roots_that_are_not_plain():
    assert ServiceSettings(allowed_roots=["/srv/photos", "s3://b/p"]).allowed_roots == [
        "/srv/photos",
        "s3://b/p",
    ]
    for bad in (["relative/dir"], ["s3://b/p?x=1"], ["/srv/../etc"]):
        with pytest.raises(ValidationError, match="allowed_roots"):
            ServiceSettings(allowed_roots=bad)


# --- download links -----------------------------------------------------------------------------------------


def test_a_link_works_until_its_expiry_then_answers_expired_once(tmp_path):
    store = LinkStore(tmp_path)
    token, expires_at = store.put({"cn-1inch-blue.jpg": b"jpeg bytes"}, 10, now=1000.0)
    assert expires_at == 1010.0 and len(token) == 43
    state, path = store.get(token, "cn-1inch-blue.jpg", now=1009.0)
    assert state is LinkState.LIVE and path.read_bytes() == b"jpeg bytes"
    assert store.get(token, "other.jpg", now=1009.0) == (LinkState.UNKNOWN, None)
    assert store.get(token, "../" + token, now=1009.0) == (LinkState.UNKNOWN, None)
    assert store.get("x" * 43, "cn-1inch-blue.jpg", now=1009.0) == (LinkState.UNKNOWN, None)
    assert store.get("../links", "cn-1inch-blue.jpg", now=1009.0) == (LinkState.UNKNOWN, None)
    assert store.get(token, "cn-1inch-blue.jpg", now=1010.0) == (LinkState.EXPIRED, None)
    assert not (tmp_path / "links" / token).exists()
    assert store.get(token, "cn-1inch-blue.jpg", now=1010.0) == (LinkState.UNKNOWN, None)


def test_cleanup_deletes_expired_links_only(tmp_path):
    store = LinkStore(tmp_path)
    short, _ = store.put({"a.jpg": b"1"}, 5, now=1000.0)
    long, _ = store.put({"a.jpg": b"2"}, 500, now=1000.0)
    assert store.cleanup(now=1100.0) == [short]
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == [long]


def test_tokens_do_not_repeat(tmp_path):
    store = LinkStore(tmp_path)
    tokens = {store.put({"a.jpg": b""}, 60)[0] for _ in range(50)}
    assert len(tokens) == 50


def test_deliver_replaces_bytes_with_urls(tmp_path):
    store = LinkStore(tmp_path)
    result = {
        "outputs": [
            {
                "kind": "photo",
                "spec": "cn-1inch",
                "background": "#438edb",
                "paper": None,
                "ext": "jpg",
                "data": b"1",
            },
            {
                "kind": "photo",
                "spec": "cn-1inch",
                "background": "#438edb",
                "paper": None,
                "ext": "jpg",
                "data": b"2",
            },
            {
                "kind": "layout",
                "spec": "cn-1inch",
                "background": "blue",
                "paper": "6inch",
                "ext": "jpg",
                "data": b"3",
            },
        ]
    }
    store.deliver(result, 60)
    urls = [o["url"] for o in result["outputs"]]
    token = urls[0].split("/")[3]
    assert [u.rsplit("/", 1)[1] for u in urls] == [
        "cn-1inch-_438edb.jpg",
        "1-cn-1inch-_438edb.jpg",
        "6inch-cn-1inch-blue.jpg",
    ]
    assert all(
        u.startswith(f"/v1/files/{token}/") and "data" not in o
        for u, o in zip(urls, result["outputs"], strict=True)
    )
    assert [store.get(token, u.rsplit("/", 1)[1])[1].read_bytes() for u in urls] == [b"1", b"2", b"3"]
    assert file_name("a b", "c/d", ext="png") == "a_b-c_d.png"


# --- the gate before the segmenter --------------------------------------------------------------------------


def test_a_lone_photo_goes_straight_to_the_segmenter():
    async def run() -> None:
        gate = SegmentGate(max_group=8, max_wait_s=60, threads=2)
        with gate.preparing(), gate.on_cpu():
            await asyncio.sleep(0)
        await asyncio.wait_for(gate.wait(), 1)  # no sibling preparing: no wait (60 s would time out)

    asyncio.run(run())


def test_a_photo_is_not_held_while_a_cpu_thread_is_free():
    async def run() -> None:
        gate = SegmentGate(max_group=8, max_wait_s=60, threads=2)
        with gate.preparing(), gate.on_cpu():  # a sibling preparing on one of two threads
            await asyncio.wait_for(gate.wait(), 1)

    asyncio.run(run())


def test_prepared_photos_leave_together_when_the_cpu_runs_out_of_preparation():
    async def run() -> list[str]:
        gate = SegmentGate(max_group=8, max_wait_s=60, threads=1)
        events: list[str] = []
        done = [asyncio.Event() for _ in range(3)]

        async def photo(i: int) -> None:
            with gate.preparing(), gate.on_cpu():
                await done[i].wait()
            events.append(f"prepared {i}")
            await gate.wait()
            events.append(f"sent {i}")

        tasks = [asyncio.create_task(photo(i)) for i in range(3)]
        for i in range(3):
            await asyncio.sleep(0.01)
            done[i].set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        return events

    events = asyncio.run(run())
    assert events[:3] == ["prepared 0", "prepared 1", "prepared 2"]
    assert sorted(events[3:]) == ["sent 0", "sent 1", "sent 2"]


def test_the_gate_releases_on_a_full_group_a_failed_sibling_or_the_wait_limit():
    async def full_group() -> None:
        gate = SegmentGate(max_group=2, max_wait_s=60, threads=1)
        with gate.preparing(), gate.on_cpu():  # a third photo still preparing: only the full group releases
            waiting = asyncio.create_task(gate.wait())
            await asyncio.sleep(0.01)
            assert not waiting.done()
            await asyncio.wait_for(gate.wait(), 1)
            await asyncio.wait_for(waiting, 1)

    async def failed_sibling() -> None:
        gate = SegmentGate(max_group=8, max_wait_s=60, threads=1)
        waiting = None
        with pytest.raises(ValueError), gate.preparing(), gate.on_cpu():
            waiting = asyncio.create_task(gate.wait())
            await asyncio.sleep(0.01)
            assert not waiting.done()
            raise ValueError("decode error")
        await asyncio.wait_for(waiting, 1)

    async def wait_limit() -> None:
        gate = SegmentGate(max_group=8, max_wait_s=0.05, threads=1)
        with gate.preparing(), gate.on_cpu():
            await asyncio.wait_for(gate.wait(), 1)

    for case in (full_group, failed_sibling, wait_limit):
        asyncio.run(case())


def test_the_serve_config_file_holds_valid_settings_and_the_code_s_bounds():
    import yaml

    from idphoto_ray.service.app import INGRESS_ONGOING, INGRESS_QUEUED
    from idphoto_ray.service.deployments import FINISHER_ONGOING

    config = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "configs" / "serve.yaml"))
    (application,) = config["applications"]
    settings = ServiceSettings.model_validate(application["args"])
    assert settings.allowed_roots == [] and settings.link_ttl_s == 600
    deployments = {d["name"]: d for d in application["deployments"]}
    ingress = deployments["Ingress"]
    assert (ingress["max_ongoing_requests"], ingress["max_queued_requests"]) == (
        INGRESS_ONGOING,
        INGRESS_QUEUED,
    )
    assert deployments["Finisher"]["max_ongoing_requests"] == FINISHER_ONGOING


def test_large_models_run_one_photo_at_a_time_on_a_cpu_only():
    from idphoto_ray.service.deployments import MAX_BATCH, batch_limit

    assert batch_limit("cpu", 1024) == 1  # IS-Net on a CPU: batching cost throughput and memory
    assert batch_limit("cpu", 256) == MAX_BATCH  # mediapipe-selfie batches at no cost
    assert batch_limit("cuda", 1024) == MAX_BATCH
