"""Secrets in storage options never reach what a run writes: keys kept, values replaced."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from idphoto_ray.redact import (
    REDACTED,
    ScrubSecrets,
    is_secret_name,
    redact,
    scrub,
    scrub_handlers,
    secret_values,
)

S3 = {
    "key": "AKIAEXAMPLEKEY",
    "secret": "wJalrXUtnFEMI/K7MDENG",
    "token": "FwoGZXIvYXdzEJr//session",
    "endpoint_url": "https://minio:s3cr3tpass@minio.local:9000",
    "anon": False,
    "max_keys": 100,
    "client_kwargs": {"region_name": "eu-west-1", "aws_secret_access_key": "nested-secret-value"},
    "config_kwargs": {"retries": {"max_attempts": 3}},
    "credentials": {"client_id": "abc", "private_key": "-----BEGIN KEY-----"},
}


def test_secret_values_are_replaced_and_keys_kept():
    out = redact(S3)
    assert set(out) == set(S3)
    assert out["key"] == out["secret"] == out["token"] == out["credentials"] == REDACTED
    assert out["client_kwargs"] == {"region_name": "eu-west-1", "aws_secret_access_key": REDACTED}
    assert out["endpoint_url"] == "https://***@minio.local:9000"
    assert out["anon"] is False and out["max_keys"] == 100
    assert out["config_kwargs"] == {"retries": {"max_attempts": 3}}
    assert S3["key"] == "AKIAEXAMPLEKEY"  # a copy: the job still needs the real options


def test_names_are_matched_word_by_word():
    for name in (
        "key",
        "secret",
        "aws_secret_access_key",
        "sas_token",
        "account_key",
        "password",
        "SessionToken",
        "client_secret",
        "passphrase",
    ):
        assert is_secret_name(name), name
    for name in ("endpoint_url", "region_name", "anon", "max_keys", "use_ssl", "version_aware"):
        assert not is_secret_name(name), name


def test_free_text_and_log_lines_are_scrubbed(caplog):
    secrets = secret_values(S3)
    assert {"AKIAEXAMPLEKEY", "nested-secret-value", "-----BEGIN KEY-----", "minio:s3cr3tpass"} <= secrets
    text = "PUT failed with key AKIAEXAMPLEKEY via https://minio:s3cr3tpass@minio.local:9000"
    cleaned = scrub(text, secrets)
    assert "AKIAEXAMPLEKEY" not in cleaned and "s3cr3tpass" not in cleaned and REDACTED in cleaned

    logger = logging.getLogger("idphoto_ray.test_redact")
    handler_filter = ScrubSecrets(secrets)
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("options: %s", S3)
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "wJalrXUtnFEMI" not in caplog.text and "nested-secret-value" not in caplog.text
    assert "endpoint_url" in caplog.text


def test_handlers_scrub_records_of_child_loggers_and_their_tracebacks():
    import io

    parent = logging.getLogger("test_redact_scrub")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    parent.addHandler(handler)
    try:
        scrub_handlers(secret_values(S3), logger=parent)
        scrub_handlers({"later-run-secret"}, logger=parent)  # a second run adds to the same filter
        assert len([f for f in handler.filters if isinstance(f, ScrubSecrets)]) == 1
        child = logging.getLogger("test_redact_scrub.job")
        child.warning("PUT s3://photos/a.jpg with key %s failed", S3["key"])
        child.warning("and later-run-secret too")
        try:
            raise OSError(f"403 for https://minio:s3cr3tpass@minio.local:9000 token {S3['token']}")
        except OSError:
            child.exception("write failed")
    finally:
        parent.removeHandler(handler)
    text = stream.getvalue()
    assert "OSError: 403" in text and text.count(REDACTED) >= 4
    for secret in (S3["key"], "later-run-secret", "s3cr3tpass", S3["token"]):
        assert secret not in text, secret


@pytest.mark.parametrize(
    "setup",
    [
        # the CLI's driver: its one stderr handler scrubs URL credentials from the start
        "from idphoto_ray.console import configure_logging; configure_logging(False)",
        # a Ray worker process: no handler on the root logger, records go through logging.lastResort
        "from idphoto_ray.job.worker import scrub_worker_logs; scrub_worker_logs(['fault-suite-token'])",
    ],
)
def test_a_secret_in_a_log_record_is_scrubbed_before_it_reaches_stderr(setup):
    code = (
        f"import logging; {setup}; "
        "logging.getLogger('idphoto_ray.job.stages').warning("
        "'preview not written: GET https://user:hunter2pass@store.local/x?tok=fault-suite-token')"
    )
    if "configure_logging" in setup:
        code = code.replace("fault-suite-token", "url-only")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "preview not written: GET https://***@store.local/x" in proc.stderr, proc.stderr
    assert "hunter2pass" not in proc.stderr and "fault-suite-token" not in proc.stderr
