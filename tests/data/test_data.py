import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from sdtools.data.files import load_csv, load_karpathy
from sdtools.data.specs import open_data
from sdtools.data.synthetic import COLOURS, SHAPES, STYLES, SyntheticConfig, SyntheticStream
from sdtools.data.webdataset import expand_shards
from sdtools.errors import DataError


def _img(path, mode="RGB", colour=(200, 30, 30)):
    size = (12, 10)
    if mode == "L":
        im = Image.new("L", size, 128)
    elif mode == "RGBA":
        im = Image.new("RGBA", size, (*colour, 0))  # fully transparent: composited on white
    else:
        im = Image.new("RGB", size, colour)
    im.save(path)
    return path


def test_csv_groups_captions_and_domains(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    _img(d / "a.png")
    _img(d / "b.png", mode="L")
    _img(d / "c.png", mode="RGBA")
    rows = ["filepath\ttitle\tdomain", "imgs/a.png\ta red box\t0", "imgs/b.png\tgrey\t1",
            "imgs/a.png\tanother caption of a\t0", "imgs/c.png\t\t1"]
    (tmp_path / "d.csv").write_bytes("\n".join(rows).encode() + b"\nimgs/b.png\tbad \xff byte\t1")
    data = open_data(f"csv:{tmp_path / 'd.csv'}")
    assert data.n_images == 2 and data.no_caption == 1  # c.png has no caption: left out
    np.testing.assert_array_equal(data.image_of_text, [0, 0, 1, 1])
    assert data.captions_of(0) == ["a red box", "another caption of a"]
    assert data.captions[3] == "bad \ufffd byte"  # non-UTF-8 bytes do not stop the run
    assert "" not in data.captions  # never an empty caption
    assert list(data.domains) == ["0", "1"]
    assert data.load_image(1).mode == "RGB"  # grayscale converted
    (tmp_path / "e.csv").write_text("filepath,title\nimgs/c.png,white corner\n")
    rgba = open_data(f"csv:{tmp_path / 'e.csv'}")
    assert rgba.load_image(0).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_csv_missing_images_error_and_skip(tmp_path):
    _img(tmp_path / "a.png")
    lines = ["filepath,title", "a.png,one", "gone1.png,two", "gone2.png,three", "gone3.png,x",
             "gone4.png,y"]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"4 of 5 images are missing \(first: .*gone1.png"):
        load_csv(tmp_path / "d.csv")
    data = load_csv(tmp_path / "d.csv", skip_missing=True)
    assert data.n_images == 1 and data.skipped == 4 and data.captions == ["one"]
    with pytest.raises(DataError, match="no column 'caption'"):
        load_csv(tmp_path / "d.csv", caption_key="caption")
    with pytest.raises(DataError, match="not found"):
        open_data(f"csv:{tmp_path / 'nope.csv'}")


def _karpathy(tmp_path):
    root = tmp_path / "images"
    (root / "val2014").mkdir(parents=True)
    images = []
    for i, split in enumerate(["train", "restval", "test", "test", "val"]):
        _img(root / "val2014" / f"{i}.jpg")
        images.append({"filepath": "val2014", "filename": f"{i}.jpg", "split": split,
                       "sentences": [{"raw": f"image {i} caption {j}", "tokens": []}
                                     for j in range(5 if i != 3 else 4)]})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path, root


def test_karpathy_splits(tmp_path):
    path, root = _karpathy(tmp_path)
    test = open_data(f"karpathy:{path}:{root}:test")
    assert test.n_images == 2
    np.testing.assert_array_equal(test.image_of_text, [0] * 5 + [1] * 4)
    assert test.captions[5] == "image 3 caption 0"
    train = load_karpathy(path, root, "train")
    assert train.n_images == 2  # train + restval
    assert load_karpathy(path, root, "all").n_images == 5
    assert load_karpathy(path, root, "restval").n_images == 1
    both = open_data(f"karpathy:{path}:{root}:train+val")  # the official Flickr30K set
    assert both.n_images == 3 and both.spec.endswith(":train+val")
    (root / "val2014" / "2.jpg").unlink()
    with pytest.raises(DataError, match="1 of 2 images are missing"):
        load_karpathy(path, root, "test")
    with pytest.raises(DataError, match="unknown split"):
        load_karpathy(path, root, "dev")


def test_webdataset_shards(tmp_path):
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s:03d}.tar", "w") as tf:
            for i in range(3):
                key = f"s{s}_{i:04d}"
                buf = io.BytesIO()
                Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(buf, format="PNG")
                files = {f"{key}.png": buf.getvalue()}
                if i == 2:
                    files[f"{key}.json"] = json.dumps({"captions": ["x", "y"]}).encode()
                else:
                    files[f"{key}.txt"] = f"caption {s} {i}".encode()
                for name, payload in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tf.addfile(info, io.BytesIO(payload))
    data = open_data(f"wds:{tmp_path}/shard-{{000..001}}.tar")
    assert data.n_images == 6
    np.testing.assert_array_equal(data.image_of_text, [0, 1, 2, 2, 3, 4, 5, 5])
    assert data.captions[:4] == ["caption 0 0", "caption 0 1", "x", "y"]
    assert data.load_image(1).getpixel((0, 0)) == (10, 0, 0)
    with pytest.raises(DataError, match="shard"):
        open_data(f"wds:{tmp_path}/shard-{{000..002}}.tar")


def test_brace_expansion():
    assert expand_shards("d/{08..10}.tar") == ["d/08.tar", "d/09.tar", "d/10.tar"]
    assert expand_shards("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"]


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown data spec"):
        open_data("parquet:x")
    with pytest.raises(DataError, match="unknown synthetic option 'colour'"):
        open_data("synthetic:colour=3")


# ------------------------------------------------------------------ synthetic stream


def test_synthetic_is_deterministic_by_seed():
    a = open_data("synthetic:domain=1,n=40,seed=3")
    b = open_data("synthetic:domain=1,n=40,seed=3")
    c = open_data("synthetic:domain=1,n=40,seed=4")
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert not np.array_equal(a.images, c.images)
    train = SyntheticStream(SyntheticConfig(seed=3)).domain(1, "train", n=40)
    assert not np.array_equal(train.images, a.images)  # splits differ


def test_synthetic_domains_differ_but_share_words():
    cfg = SyntheticConfig(n_domains=4)
    stream = SyntheticStream(cfg)
    d0, d3 = stream.domain(0, "test", n=300), stream.domain(3, "test", n=300)
    s0 = {STYLES[i] for i in d0.attributes["style"]}
    s3 = {STYLES[i] for i in d3.attributes["style"]}
    assert s0 == {"plain", "striped"} and s3 == {"checkered", "noisy"}
    assert set(d0.attributes["shape"]) & set(d3.attributes["shape"])  # shared objects
    for k in range(4):
        v = cfg.domain_vocab(k)
        assert len(v["shape"]) == len(SHAPES) - 2 and len(v["colour"]) == len(COLOURS) - 2
    assert cfg.domain_vocab(0)["shape"] != cfg.domain_vocab(1)["shape"]
    # captions are rich: few exact duplicates within a test split
    assert len(set(d0.captions)) / len(d0.captions) > 0.97


def test_synthetic_captions_match_pixels():
    data = SyntheticStream(SyntheticConfig(image_size=32)).domain(0, "test", n=200)
    colours = np.asarray(list(COLOURS.values()))
    checked = 0
    for i in range(data.n_images):
        w = data.words(i)
        for j in np.flatnonzero(data.image_of_text == i):
            for word in w.values():
                assert word in data.captions[j]
        if w["fill"] == "filled" and w["shape"] in ("circle", "square", "diamond"):
            grid = (0.25, 0.5, 0.75)
            p = data.attributes["pos"][i]
            jy, jx = data.attributes["jitter"][i]
            cy, cx = int(round(grid[p // 3] * 32)) + jy, int(round(grid[p % 3] * 32)) + jx
            px = data.images[i, cy, cx] / 255.0
            nearest = int(np.argmin(np.abs(colours - px).sum(1)))
            assert list(COLOURS)[nearest] == w["colour"]
            checked += 1
    assert checked > 10
    assert data.load_image(0).size == (32, 32)


def test_synthetic_all_domains_and_bad_options():
    data = open_data("synthetic:domain=all,n=10,n_domains=3")
    assert data.n_images == 30 and list(np.unique(data.domains)) == [0, 1, 2]
    assert len(data.captions) == 30 * 3
    with pytest.raises(DataError, match="outside"):
        open_data("synthetic:domain=5")
    with pytest.raises(DataError, match="n_domains"):
        SyntheticConfig(n_domains=9)


def test_evaluation_sets_with_one_stem_get_distinct_names():
    """Two sets called good.csv in different folders collided in a run's per-set report."""
    from sdtools.data.specs import display_names

    names = display_names(["csv:a/good.csv", "csv:b/good.csv", "synthetic", "synthetic",
                           "csv:x.csv", "karpathy:j.json:imgs:test"])
    assert names == ["a/good", "b/good", "synthetic", "synthetic#2", "x", "j:test"]
    assert len(set(names)) == len(names)
