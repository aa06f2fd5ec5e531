"""The online service against a real local Serve app: status codes, limits, auth, 429, a job with progress,
URI jobs under allowed roots, download links, and the upload page in real headless Chromium.

One app serves the whole module (starting Serve costs tens of seconds on two cores), so its settings carry
what every test needs: a token, small limits, allowed roots (a local folder and a bucket prefix that is never
reached). Its ingress is bounded at 4 ongoing + 2 queued requests so that a burst of 16 saturates it. The two
API jobs start as soon as the app is up (`started_jobs`): each is ~60 s of Ray Data start-up, mostly waiting,
so they overlap each other and the quick tests. URI jobs being off by default is tested on the settings and
the root check in test_service_parts.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PORT = 18331
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "devset"
PORTRAITS = ["deepface_img14.jpg", "deepface_img16.jpg"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _portrait(name: str = PORTRAITS[0]) -> bytes:
    for root in (DEVSET, Path("/work/shared/devset")):
        if (root / name).exists():
            return (root / name).read_bytes()
    pytest.skip(f"dev portrait {name} not available")


@pytest.fixture(scope="module")
def service(ray_local, tmp_path_factory):
    from ray import serve

    from idphoto_ray.service.app import Ingress
    from idphoto_ray.service.deployments import Finisher, Segmenter
    from idphoto_ray.service.settings import ServiceSettings

    workdir = tmp_path_factory.mktemp("service")
    allowed = tmp_path_factory.mktemp("allowed")
    settings = ServiceSettings(
        token=TOKEN,
        workdir=str(workdir),
        device="cpu",
        max_upload_mb=2,
        processing={"max_pixels": 2_000_000},
        allowed_roots=[str(allowed), "s3://photos-bucket/school"],
        link_ttl_s=600,
    ).model_dump()
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    segmenter = Segmenter.bind(settings)
    app = Ingress.options(max_ongoing_requests=4, max_queued_requests=2).bind(
        Finisher.bind(segmenter, settings), segmenter, settings
    )
    serve.run(app, name="idphoto-test", route_prefix="/")
    yield {"base": BASE, "workdir": workdir, "allowed": allowed}
    serve.shutdown()


@pytest.fixture()
def client(service):
    import httpx

    with httpx.Client(base_url=BASE, timeout=120) as c:
        yield c


@pytest.fixture(scope="module", autouse=True)
def started_jobs(service):
    """The zip job (its event stream read from the first event on, in a thread) and the URI job, started
    before the first test; the job tests wait for them and check everything."""
    import httpx

    allowed = service["allowed"]
    (allowed / "in").mkdir()
    (allowed / "in" / "anna.jpg").write_bytes(_portrait())
    with httpx.Client(base_url=BASE, timeout=120) as c:
        zipped = c.post(
            "/v1/jobs",
            headers=AUTH,
            files={"files": ("class.zip", _class_zip())},
            data={"specs": "cn-1inch", "backgrounds": "blue", "layout": "5inch"},
        )
        by_uri = c.post(
            "/v1/jobs",
            headers=AUTH,
            json={
                "input_uri": str(allowed / "in"),
                "output_uri": f"file://{allowed}/out",
                "backgrounds": ["white"],
            },
        )
    events: list[dict] = []
    stream_type: list[str] = []

    def read_events() -> None:
        with (
            httpx.Client(base_url=BASE, timeout=600) as c,
            c.stream("GET", zipped.json()["events_url"], headers=AUTH) as stream,
        ):
            stream_type.append(stream.headers["content-type"])
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    reader = threading.Thread(target=read_events, daemon=True)
    if zipped.status_code == 202:
        reader.start()
    yield {"zip": zipped, "uri": by_uri, "events": events, "stream_type": stream_type, "reader": reader}


def test_health_is_public_and_the_api_needs_the_token(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["auth"] is True
    assert client.get("/").status_code == 200 and "证件照" in client.get("/").text
    assert client.get("/openapi.json").json()["paths"]["/v1/photos"]["post"]["requestBody"]
    assert client.get("/docs").status_code == 200
    missing = client.get("/v1/specs")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/specs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    specs = client.get("/v1/specs", headers=AUTH).json()
    assert {"cn-1inch", "us-passport"} <= {s["name"] for s in specs}
    papers = client.get("/v1/backgrounds", headers=AUTH).json()["papers"]
    assert papers["6inch"] == {"width_mm": 101.6, "height_mm": 152.4}
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "http://x"}).headers


def test_one_photo_multipart_with_a_print_sheet(client):
    response = client.post(
        "/v1/photos",
        headers=AUTH,
        files={"image": ("whatever.bin", _portrait())},
        data={"specs": "cn-1inch,cn-2inch", "backgrounds": "white", "layout": "6inch"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in ("ok", "needs_review")
    assert all(f["text"] and f["flag"] for f in body["flags"])
    assert body["input"]["width"] == 800 and body["checks"]["face_count"] == 1
    assert body["timings_ms"]["total"] > 0 and body["timings_ms"]["segment"] > 0
    kinds = [
        (o["kind"], o["spec"], o["background"], o["paper"], o["width"], o["height"]) for o in body["outputs"]
    ]
    assert kinds == [
        ("photo", "cn-1inch", "white", None, 295, 413),
        ("photo", "cn-2inch", "white", None, 413, 579),
        ("layout", "cn-1inch", "white", "6inch", 1200, 1800),
    ]
    sheet = Image.open(io.BytesIO(base64.b64decode(body["outputs"][2]["data_base64"])))
    assert sheet.size == (1200, 1800) and sheet.info["dpi"] == pytest.approx((300, 300))


def test_one_photo_as_base64_json_matches_multipart(client):
    data = _portrait()
    as_json = client.post(
        "/v1/photos",
        headers=AUTH,
        json={
            "image_base64": base64.b64encode(data).decode(),
            "specs": ["cn-1inch"],
            "backgrounds": ["blue"],
        },
    )
    as_form = client.post(
        "/v1/photos",
        headers=AUTH,
        files={"image": ("a.jpg", data)},
        data={"specs": "cn-1inch", "backgrounds": "blue"},
    )
    assert as_json.status_code == as_form.status_code == 200
    assert as_json.json()["outputs"][0]["data_base64"] == as_form.json()["outputs"][0]["data_base64"]


def test_bad_uploads_get_clear_statuses(client):
    def post(**kwargs):
        return client.post("/v1/photos", headers=AUTH, **kwargs)

    not_image = post(files={"image": ("photo.jpg", b"this is text, named .jpg")})
    assert not_image.status_code == 422 and "not_an_image" in not_image.json()["detail"]
    truncated = post(files={"image": ("a.jpg", _portrait()[:2000])})
    assert truncated.status_code == 422 and truncated.json()["reason"] == "decode_error"
    too_big = post(files={"image": ("a.jpg", b"\xff\xd8\xff" + b"\x00" * (3 * 2**20))})
    assert too_big.status_code == 413
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (90, 90, 90)).save(buf, "PNG")  # 3 MP over the test's 2 MP limit
    too_many_pixels = post(files={"image": ("a.png", buf.getvalue())})
    assert too_many_pixels.status_code == 413 and too_many_pixels.json()["reason"] == "too_large"
    assert post(files={"image": ("a.jpg", _portrait())}, data={"specs": "nope"}).status_code == 422
    assert post(files={"image": ("a.jpg", _portrait())}, data={"backgrounds": "plaid"}).status_code == 422
    layout = json.dumps({"paper": "6inch", "items": [{"spec": "cn-1inch", "copies": 13}]})
    refused = post(files={"image": ("a.jpg", _portrait())}, data={"layout": layout})
    assert refused.status_code == 422 and "at most" in refused.json()["detail"]
    assert post(json={"image_base64": "@@not base64@@"}).status_code == 422
    raw = client.post("/v1/photos", content=b"raw", headers={**AUTH, "Content-Type": "image/jpeg"})
    assert raw.status_code == 415
    no_face = post(files={"image": ("grey.png", _grey_png())})
    assert no_face.status_code == 200 and no_face.json()["reason"] == "no_face"


def _grey_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_saturated_queue_answers_429_with_retry_after(service):
    import httpx

    data = _portrait()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=BASE, timeout=300) as c:
            return await asyncio.gather(
                *[c.post("/v1/photos", headers=AUTH, files={"image": ("a.jpg", data)}) for _ in range(16)]
            )

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 429}, codes
    # Up to 4 ongoing + 2 queued are served; an earlier test's job event streams may still hold slots (a
    # fresh CI run served 3), so ask only that more than one was.
    assert codes.count(200) >= 2
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.headers.get("retry-after") == "2" for r in refused)
    stats = httpx.get(f"{BASE}/v1/stats", headers=AUTH, timeout=60).json()
    assert sum(stats["batch_sizes"].values()) >= 1


def _class_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in PORTRAITS:
            archive.writestr(f"class 3/{name}", _portrait(name))
        archive.writestr("class 3/readme.txt", b"not a photo")
    return buf.getvalue()


# --- download links -----------------------------------------------------------------------------------------


def test_download_links_work_without_the_token_then_expire(client, service):
    response = client.post(
        "/v1/photos",
        headers=AUTH,
        files={"image": ("a.jpg", _portrait())},
        data={"specs": "cn-1inch", "backgrounds": "white", "layout": "6inch", "delivery": "link"},
    )
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [o["kind"] for o in outputs] == ["photo", "layout"]
    assert all("data_base64" not in o and o["url"].startswith("/v1/files/") for o in outputs)
    assert all(time.time() + 500 < o["expires_at"] <= time.time() + 600 for o in outputs)
    photo = client.get(outputs[0]["url"])  # no Authorization: the unguessable link is the capability
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["cache-control"] == "no-store" and photo.headers["referrer-policy"] == "no-referrer"
    assert Image.open(io.BytesIO(photo.content)).size == (295, 413)
    assert Image.open(io.BytesIO(client.get(outputs[1]["url"]).content)).size == (1200, 1800)
    token = outputs[0]["url"].split("/")[3]
    assert client.get(f"/v1/files/{'A' * 43}/cn-1inch-white.jpg").status_code == 404
    assert client.get(f"/v1/files/{token}/other.jpg").status_code == 404
    assert client.get(f"/v1/files/{token}/..%2F..%2Fjobs").status_code == 404

    short = client.post(
        "/v1/photos",
        headers=AUTH,
        json={"image_base64": base64.b64encode(_portrait()).decode(), "delivery": "link", "link_ttl_s": 1},
    )
    assert short.status_code == 200, short.text
    (output,) = short.json()["outputs"]
    token = output["url"].split("/")[3]
    assert (service["workdir"] / "links" / token).is_dir()
    time.sleep(max(0.0, output["expires_at"] - time.time()) + 0.2)
    assert client.get(output["url"]).status_code == 410
    assert client.get(output["url"]).status_code == 404
    assert not (service["workdir"] / "links" / token).exists()
    capped = client.post(
        "/v1/photos",
        headers=AUTH,
        files={"image": ("a.jpg", _portrait())},
        data={"delivery": "link", "link_ttl_s": "99999"},
    )
    assert capped.json()["outputs"][0]["expires_at"] <= time.time() + 600
    bad = client.post(
        "/v1/photos", headers=AUTH, files={"image": ("a.jpg", _portrait())}, data={"delivery": "email"}
    )
    assert bad.status_code == 422


# --- jobs over URIs under the allowed roots -----------------------------------------------------------------


def test_uri_jobs_outside_the_allowed_roots_are_refused(client, service, tmp_path):
    allowed, outside = service["allowed"], tmp_path / "outside"
    (outside / "in").mkdir(parents=True)
    (outside / "in" / "anna.jpg").write_bytes(_portrait())
    (allowed / "escape").symlink_to(outside)
    (allowed / "mine").mkdir()

    def post(input_uri: str, output_uri: str, headers: dict | None = None) -> tuple[int, str]:
        body = {"input_uri": input_uri, "output_uri": output_uri}
        response = client.post("/v1/jobs", headers=AUTH if headers is None else headers, json=body)
        return response.status_code, response.json()["detail"]

    mine = str(allowed / "mine")
    assert post(str(outside / "in"), mine)[0] == 403
    assert post(mine, str(outside / "out"))[0] == 403  # writing outside is refused as well
    assert post(f"{allowed}/../{outside.name}/in", mine)[0] == 422
    code, detail = post(str(allowed / "escape" / "in"), mine)
    assert code == 403 and "not under an allowed root" in detail
    assert post(mine, str(allowed / "escape" / "out"))[0] == 403
    assert post("s3://other-bucket/school/in", mine)[0] == 403
    assert post("gs://photos-bucket/school/in", mine)[0] == 403
    assert post("s3://photos-bucket/school-b/in", mine)[0] == 403
    assert post("s3://photos-bucket/school/in?endpoint_override=127.0.0.1:1", mine)[0] == 422
    assert post("/etc", mine)[0] == 403
    assert post(mine, mine, headers={})[0] == 401  # the token comes first
    code, detail = post(mine, f"{allowed}/mine-out")
    assert code == 422 and "no photos" in detail
    assert not (outside / "out").exists() and not (outside / "in" / "_review").exists()


# --- the upload page in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Chromium: apt-get install -y chromium")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs playwright (the dev extra)")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def test_page_makes_one_photo_and_a_batch(service, browser, tmp_path):
    photo = tmp_path / "anna.jpg"
    photo.write_bytes(_portrait())
    archive = tmp_path / "class.zip"
    archive.write_bytes(_class_zip())
    page = browser.new_page(viewport={"width": 1100, "height": 1400}, accept_downloads=True)
    page.goto(BASE + "/")
    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    page.wait_for_selector("input[name=spec][value=cn-1inch]")
    page.select_option("#paper", "6inch")

    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#photo-status", timeout=120_000)
    assert page.inner_text("#photo-status") in ("合格 ok", "需复核 needs review")
    assert page.locator("#photo-result figure img").count() == 2  # the photo and the print sheet
    with page.expect_download() as download:
        page.locator("#photo-result a.download").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "anna-cn-1inch-blue.jpg"
    assert Image.open(saved).size == (295, 413)

    page.set_input_files("#batch", str(archive))
    page.wait_for_selector("#job-zip", timeout=600_000)
    assert page.inner_text("#job-percent") == "100"
    assert page.eval_on_selector("#job-progress", "el => el.value") == 100
    page.screenshot(
        path=str(Path(os.environ.get("IDPHOTO_SCREENSHOT_DIR", tmp_path)) / "service-page.png"),
        full_page=True,
    )
    with page.expect_download() as download:
        page.click("#job-zip")
    zipped = tmp_path / "results.zip"
    download.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as results:
        assert "manifest.csv" in results.namelist()
    page.close()


# --- the two jobs started by `started_jobs`, checked last: by now they have run beside the other tests ------


def test_a_job_end_to_end_with_progress_events(client, started_jobs):
    created = started_jobs["zip"]
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == 2 and job["skipped"] == ["class 3/readme.txt"]
    started_jobs["reader"].join(timeout=600)
    assert not started_jobs["reader"].is_alive(), "the event stream did not end within 600 s"
    assert started_jobs["stream_type"][0].startswith("text/event-stream")
    events = started_jobs["events"]
    assert events[0]["state"] in ("queued", "running")
    assert events[-1]["state"] == "done", events[-1]
    assert events[-1]["percent"] == 100.0
    assert [e["percent"] for e in events] == sorted(e["percent"] for e in events)
    status = client.get(job["status_url"], headers=AUTH).json()
    assert sum(status["counts"].values()) == 2
    results = client.get(job["results_url"], headers=AUTH)
    assert results.status_code == 200
    with zipfile.ZipFile(io.BytesIO(results.content)) as archive:
        names = archive.namelist()
    assert "manifest.csv" in names and "review.html" in names and "run.json" in names
    assert any(n.startswith("manifest/") and n.endswith(".parquet") for n in names)
    photos = [n for n in names if n.startswith("cn-1inch/blue/")]
    assert sorted(photos) == [
        "cn-1inch/blue/class_3_deepface_img14.jpg",
        "cn-1inch/blue/class_3_deepface_img16.jpg",
    ]
    sheets = sorted(n for n in names if n.startswith("layout/5inch/"))
    assert sheets == ["layout/5inch/class_3_deepface_img14.jpg", "layout/5inch/class_3_deepface_img16.jpg"]
    rows = client.get(job["manifest_url"], headers=AUTH).json()["rows"]
    assert [r["input_id"] for r in rows] == ["class_3_deepface_img14", "class_3_deepface_img16"]
    assert rows[0]["outputs"][0]["path"] == "cn-1inch/blue/class_3_deepface_img14.jpg"
    assert client.get("/v1/jobs/" + "0" * 32, headers=AUTH).status_code == 404
    assert client.get("/v1/jobs/../../etc", headers=AUTH).status_code == 404


def test_a_uri_job_under_an_allowed_root_runs_and_lists_its_results(client, service, started_jobs):
    allowed = service["allowed"]
    created = started_jobs["uri"]
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == 1 and "results_url" not in job
    deadline = time.monotonic() + 600
    while (status := client.get(job["status_url"], headers=AUTH).json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status["state"] == "done" and status["percent"] == 100.0, status
    assert status["output_uri"] == os.path.realpath(allowed / "out")
    listed = client.get(job["manifest_url"], headers=AUTH).json()
    (row,) = listed["rows"]
    assert row["input_id"] == "anna" and row["status"] in ("ok", "needs_review")
    assert [o["path"] for o in row["outputs"]] == ["cn-1inch/white/anna.jpg"]
    assert Image.open(allowed / "out" / "cn-1inch" / "white" / "anna.jpg").size == (295, 413)
    assert client.get(f"/v1/jobs/{job['id']}/results.zip", headers=AUTH).status_code == 409
