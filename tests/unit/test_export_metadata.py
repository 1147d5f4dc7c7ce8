"""The edgepool metadata in a .tflite: the content hash that ignores it (the benchmark's model identity)."""

from __future__ import annotations

import hashlib

import pytest

from edgepool.export import metadata


@pytest.fixture(scope="module")
def models(tflite_models):
    return tflite_models.path("mixed").read_bytes(), tflite_models.path("mixed-float").read_bytes()


def test_content_hash_ignores_the_edgepool_metadata(models):
    """`convert --all` embeds a sidecar naming each profile: the models are the same, and hash the same."""
    base, other = models
    a = metadata.embed(base, {"recipe": "int8", "profile": "host-cpu"})
    b = metadata.embed(base, {"recipe": "int8", "profile": "raspberry-pi-5", "labels": ["x"] * 100})
    assert a != b and len(a) != len(b)
    assert metadata.content_hash(a) == metadata.content_hash(b)
    again = metadata.embed(a, {"profile": "pixel-8"})  # re-embedding replaces the entry
    assert metadata.read(again) == {"profile": "pixel-8"}
    assert metadata.content_hash(again) == metadata.content_hash(a)
    assert metadata.read(metadata.strip(a)) is None
    # without edgepool metadata the bytes are hashed as they are
    assert metadata.content_hash(base) == hashlib.sha256(base).hexdigest()
    # another model, or the same one with one weight changed, is another model
    assert metadata.content_hash(metadata.embed(other, {"profile": "host-cpu"})) != metadata.content_hash(a)


def test_content_hash_of_a_broken_file_is_its_bytes_hash():
    for data in (b"", b"\0" * 64, b"not a model" * 20):
        assert metadata.content_hash(data) == hashlib.sha256(data).hexdigest()
