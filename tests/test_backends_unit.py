"""Pure parts of backends, the error policy and redaction (no server needed)."""

from __future__ import annotations

import logging
import random

import pytest
import requests
from openeo.rest import OpenEoApiError, OpenEoApiPlainError

from openeo_tile_jobs.core import retry
from openeo_tile_jobs.core.backends import (
    BackendConfigError,
    BackendProfile,
    Credentials,
    InsecureUrlError,
    check_url,
    make_session,
)
from openeo_tile_jobs.core.redact import forget_secrets, install_log_redaction, redact, register_secret


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/openeo", "http://localhost:1234", "http://[::1]:99/", "https://openeo.example.org"],
)
def test_allowed_urls(url):
    check_url(url)


@pytest.mark.parametrize("url", ["http://openeo.example.org", "http://10.0.0.5:8080", "http://127.0.0.1.nip.io"])
def test_plain_http_refused_for_non_loopback_unless_allowed(url):
    with pytest.raises(InsecureUrlError, match="unencrypted"):
        check_url(url)
    check_url(url, allow_insecure_http=True)
    with pytest.raises(InsecureUrlError):
        BackendProfile(name="x", url=url)
    assert BackendProfile(name="x", url=url, allow_insecure_http=True).url == url


def test_profile_validation_and_round_trip():
    with pytest.raises(BackendConfigError):
        BackendProfile(name="x", url="ftp://host")
    with pytest.raises(BackendConfigError):
        BackendProfile(name="x", url="https://h", auth="kerberos")
    with pytest.raises(BackendConfigError):
        BackendProfile(name="x", url="https://h", parallel_jobs=0)
    p = BackendProfile(
        name="cdse", url="https://openeofed.dataspace.copernicus.eu", auth="oidc_device", parallel_jobs=2
    )
    assert BackendProfile.from_dict(p.to_dict()) == p
    assert not any("secret" in k or "password" in k for k in p.to_dict())


def test_proxies_are_the_callers():
    s = make_session({"https": "http://proxy.local:3128", "http": ""})
    assert s.proxies == {"https": "http://proxy.local:3128"} and s.trust_env is False
    assert make_session(None).trust_env is True


def test_credentials_never_show_secrets():
    c = Credentials(username="ann", password="hunter2-very-secret", client_secret="cs-123456")
    text = repr(c) + str(c)
    assert "hunter2" not in text and "cs-123456" not in text and "ann" in text
    # registered: any later message containing them is masked
    assert "hunter2" not in redact("login failed for ann with hunter2-very-secret")


def test_redaction_patterns():
    forget_secrets()
    samples = [
        "Authorization: Bearer basic//abcdef123456",
        '{"access_token": "eyJhbGciOi.xyz", "refresh_token": "r-123456"}',
        "grant_type=refresh_token&refresh_token=r-abcdef&client_secret=s3cr3t",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in text",
        "https://ann:pa55word@example.org/x",
    ]
    for s in samples:
        out = redact(s)
        for secret in ("abcdef123456", "eyJhbGciOi", "r-123456", "r-abcdef", "s3cr3t", "c2lnbmF0dXJl", "pa55word"):
            assert secret not in out, (s, out)
    # not secrets: our client token, job ids, normal text
    keep = 'tile x1_y2 "client_token": "otj-0123456789abcdef" job j-42'
    assert redact(keep) == keep


def test_log_records_are_redacted(caplog):
    install_log_redaction()
    register_secret("tok-SECRET-9876")
    with caplog.at_level(logging.INFO):
        logging.getLogger("openeo.rest.connection").info("sending %s", "Bearer oidc/p/tok-SECRET-9876")
        logging.getLogger("some.other").warning("failed with token tok-SECRET-9876")
    assert "tok-SECRET-9876" not in caplog.text
    assert "***" in caplog.text


def _api_error(status, code="X", message="m"):
    return OpenEoApiError(http_status_code=status, code=code, message=message)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ConnectionError("refused"), retry.TRANSIENT),
        (requests.ReadTimeout("slow"), retry.TRANSIENT),
        (_api_error(500, "Internal"), retry.TRANSIENT),
        (OpenEoApiPlainError(message="<html>bad gateway", http_status_code=502), retry.TRANSIENT),
        (_api_error(429, "TooManyRequests"), retry.RATE_LIMITED),
        (_api_error(400, "ConcurrentJobLimit"), retry.CONCURRENT_LIMIT),
        (_api_error(429, "ConcurrentJobLimit"), retry.CONCURRENT_LIMIT),
        (_api_error(403, "TokenInvalid"), retry.AUTH),
        (_api_error(401, "AuthenticationRequired"), retry.AUTH),
        (_api_error(404, "JobNotFound"), retry.NOT_FOUND),
        (_api_error(400, "ProcessGraphInvalid"), retry.CLIENT),
        (_api_error(403, "PermissionDenied"), retry.CLIENT),
        (ValueError("bug"), retry.OTHER),
    ],
)
def test_error_classification(exc, kind):
    assert retry.classify(exc) == kind


def test_retry_after_parsing():
    assert retry.parse_retry_after("3") == 3.0
    assert retry.parse_retry_after(None) is None
    assert retry.parse_retry_after("soon") is None
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_backoff_is_exponential_with_jitter_and_capped():
    rng = random.Random(1)
    b = retry.Backoff(base=1.0, cap=8.0, rng=rng.random)
    delays = [b.fail(0.0) for _ in range(6)]
    for i, d in enumerate(delays):
        raw = min(8.0, 2**i)
        assert raw * 0.5 <= d <= raw
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered
    assert not b.ready(0.0)
    b.succeed()
    assert b.ready(0.0) and b.failures == 0
    # Retry-After wins over the backoff, but is capped
    assert b.fail(100.0, wait=5.0) == 5.0 and b.until == 105.0
    assert b.fail(100.0, wait=10**6) == b.retry_after_cap
