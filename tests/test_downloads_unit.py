"""Asset name checks and multihash verification (pure)."""

from __future__ import annotations

import hashlib

import pytest

from openeo_tile_jobs.core.downloads import (
    UnsafeNameError,
    check_safe_name,
    job_dir_of,
    multihash_hex,
    parse_multihash,
)


@pytest.mark.parametrize(
    "name",
    [
        "../x.tif",
        "/tmp/x.tif",
        "a/b.tif",
        "a\\b.tif",
        "..",
        ".",
        "",
        "..x.tif",
        "x..tif",
        "C:x.tif",
        "job-results.json",
    ],
)
def test_unsafe_names_refused(name):
    with pytest.raises(UnsafeNameError):
        check_safe_name(name)


@pytest.mark.parametrize("name", ["openEO_2024-06-01Z.tif", "openEO.tif", "result.nc", "a b.tif", ".hidden"])
def test_plain_names_accepted(name):
    assert check_safe_name(name) == name


def test_job_dir_refuses_hostile_job_ids(tmp_path):
    assert job_dir_of(tmp_path, "j-123") == tmp_path / "job_j-123"
    with pytest.raises(UnsafeNameError):
        job_dir_of(tmp_path, "../../etc")


def test_multihash_round_trip():
    data = b"hello tiles"
    for algo in ("sha256", "sha512", "sha1", "md5", "blake2b_256"):
        name, digest = parse_multihash(multihash_hex(algo, data))
        assert name == algo
        assert len(digest) > 0
    # the well-known sha2-256 multihash prefix 0x12 0x20
    hx = multihash_hex("sha256", data)
    assert hx.startswith("1220") and hx[4:] == hashlib.sha256(data).hexdigest()
    assert parse_multihash("d50110" + hashlib.md5(data).hexdigest())[0] == "md5"  # varint code 0xd5
    with pytest.raises(ValueError):
        parse_multihash("1220abcd")  # length mismatch
    with pytest.raises(ValueError):
        parse_multihash("9901ff")
