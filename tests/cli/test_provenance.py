"""Provenance: embeddings know which items they hold, in which order; a comparison of two
probes that differ is refused, naming what differs."""

import numpy as np
import pytest
from helpers import save_modx
from PIL import Image

import sdtools
from sdtools.errors import AnalysisError
from sdtools.report import check_comparable, rotation_report


def _csv(d, rows, name="p.csv"):
    (d / name).write_text("filepath,title\n" + "".join(f"{p},{t}\n" for p, t in rows))
    return f"csv:{d / name}"


@pytest.fixture
def probe(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
        rows.append((p, f"picture number {i}"))
    save_modx(tmp_path / "a.pt", seed=1)
    return tmp_path, rows


def _embed(ckpt, spec, d):
    return sdtools.embed(str(ckpt), spec, cache=True, cache_dir=d / "cache", progress=False)


def test_reordered_probe_is_refused_naming_the_order(probe, capsys, monkeypatch):
    d, rows = probe
    a = _embed(d / "a.pt", _csv(d, rows), d)
    assert a.meta["probe"]["n_images"] == 6
    b = _embed(d / "a.pt", _csv(d, rows[::-1]), d)  # the same file, rows reordered
    assert a.meta["data"] == b.meta["data"]  # the spec alone cannot tell them apart
    with pytest.raises(AnalysisError, match="same images in a different order"):
        rotation_report(a, b)
    a.save(d / "a.npz")
    b.save(d / "b.npz")
    from sdtools.cli import main

    monkeypatch.setenv("SDTOOLS_CACHE", str(d / "cache"))
    with pytest.raises(SystemExit) as exc:
        main(["rotation", str(d / "a.npz"), str(d / "b.npz"), "-q"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "different order" in err and len(err.strip().splitlines()) == 1


def test_other_images_or_captions_are_refused(probe):
    d, rows = probe
    a = _embed(d / "a.pt", _csv(d, rows), d)
    swapped = [rows[0], rows[1], rows[2], rows[3], rows[5], rows[4]]
    other = [(p, t) for p, t in swapped[:4]] + [(rows[4][0], "a new caption"),
                                                (rows[5][0], rows[5][1])]
    b = _embed(d / "a.pt", _csv(d, other, "q.csv"), d)
    b.meta["data"] = a.meta["data"]  # the same spec string, e.g. an edited file
    with pytest.raises(AnalysisError, match="different captions"):
        check_comparable(a, b)
    c = _embed(d / "a.pt", _csv(d, rows[:5] + [(rows[0][0], "x")], "r.csv"), d)
    c.meta["data"] = a.meta["data"]
    with pytest.raises(AnalysisError):
        check_comparable(a, c)
    same = _embed(d / "a.pt", _csv(d, rows, "s.csv"), d)
    same.meta["data"] = a.meta["data"]
    check_comparable(a, same)  # the same items in the same order: fine


def _replace_keeping_size_and_mtime(path, seed):
    """Another image under the same name, its size and modification time set back."""
    import os

    st = path.stat()
    rng = np.random.default_rng(seed)  # uncompressed PNGs of one shape have one size
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        path, compress_level=0)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_an_image_replaced_under_its_name_is_another_probe(probe):
    d, rows = probe
    spec = _csv(d, rows)
    Image.open(rows[2][0]).save(rows[2][0], compress_level=0)
    a = _embed(d / "a.pt", spec, d)
    assert "content" in a.meta["probe"]
    _replace_keeping_size_and_mtime(rows[2][0], seed=9)
    b = _embed(d / "a.pt", spec, d)  # the cache must not serve the old image's embeddings
    assert not np.allclose(a.image[2], b.image[2])
    np.testing.assert_allclose(a.image[[0, 1, 3, 4, 5]], b.image[[0, 1, 3, 4, 5]], atol=1e-5)
    with pytest.raises(AnalysisError, match="other content"):
        check_comparable(a, b)
    c = _embed(d / "a.pt", spec, d)  # unchanged since: a cache hit, the same probe
    check_comparable(b, c)
    np.testing.assert_array_equal(b.image, c.image)


def test_probes_without_a_content_digest_still_compare(probe):
    """Embeddings saved before the content digest compare on what both record."""
    d, rows = probe
    a = _embed(d / "a.pt", _csv(d, rows), d)
    old = sdtools.Embeddings(a.image, a.text, a.image_of_text,
                             {**a.meta, "probe": {k: v for k, v in a.meta["probe"].items()
                                                  if k != "content"}})
    check_comparable(a, old)
