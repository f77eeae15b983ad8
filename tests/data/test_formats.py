"""Files as other tools write them: webdataset's TarWriter and img2dataset's layout, open_clip's
CSV conventions, Karpathy's splits; and a sampler that cannot loop forever."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from sdtools.data.specs import open_data
from sdtools.errors import DataError


def _png(value=0):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def _shard(path, samples):
    import webdataset as wds

    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)


def test_caption_member_is_read_when_named_and_never_becomes_an_empty_string(tmp_path):
    _shard(tmp_path / "c.tar", [{"__key__": f"{i:09d}", "jpg": _png(i), "caption": f"cap {i}"}
                                for i in range(4)])
    with pytest.raises(DataError, match=r"caption-key.*\['caption'\]|\['caption'\].*caption-key"):
        open_data(f"wds:{tmp_path}/c.tar")  # open_clip's default keys: txt, then json
    data = open_data(f"wds:{tmp_path}/c.tar:caption-key=txt;caption")
    assert data.captions == [f"cap {i}" for i in range(4)] and data.n_images == 4
    assert open_data(data.spec).captions == data.captions  # the spec round-trips


def test_img2dataset_layout_txt_wins_and_uncaptioned_samples_are_counted(tmp_path):
    samples = []
    for i in range(5):
        s = {"__key__": f"{i:09d}", "jpg": _png(i),
             "json": json.dumps({"key": f"{i:09d}", "status": "success",
                                 "caption": f"json caption {i}"})}
        if i < 4:
            s["txt"] = f"txt caption {i}"
        samples.append(s)
    samples.append({"__key__": "000000009", "jpg": _png(9), "txt": "  "})  # blank caption
    _shard(tmp_path / "00000.tar", samples[:3])
    _shard(tmp_path / "00001.tar", samples[3:])
    data = open_data(f"wds:{tmp_path}/0000{{0..1}}.tar")
    assert data.captions[:4] == [f"txt caption {i}" for i in range(4)]  # .txt over json
    assert data.captions[4] == "json caption 4"  # json's caption where there is no txt
    assert data.n_images == 5 and data.no_caption == 1 and "" not in data.captions
    both = open_data(f"wds:{tmp_path}/00000.tar::{tmp_path}/00001.tar")  # '::' lists
    assert both.captions == data.captions
    json_first = open_data(f"wds:{tmp_path}/0000{{0..1}}.tar:caption-key=json;txt")
    assert json_first.captions[0] == "json caption 0"


def test_training_on_repeated_captions_ends_with_a_clear_message(tmp_path):
    from modx.data import PhaseTensors, batches
    from sdtools.models.build import make_preprocess, make_tokenizer
    from sdtools.models.configs import tiny_clip_cfg

    _shard(tmp_path / "r.tar", [{"__key__": f"{i:04d}", "png": _png(i),
                                 "txt": "a photo" if i % 10 else f"unique {i}"}
                                for i in range(40)])
    data = open_data(f"wds:{tmp_path}/r.tar")
    cfg = tiny_clip_cfg()
    pt = PhaseTensors(data, make_preprocess(cfg), make_tokenizer(cfg))
    with pytest.raises(DataError, match="distinct caption"):
        next(batches(pt, 8, 0, 1))


def test_csv_paths_open_as_written_then_beside_the_csv(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "lists").mkdir()
    for name in ("a", "b"):
        (tmp_path / "imgs" / f"{name}.png").write_bytes(_png())
    (tmp_path / "lists" / "c.png").write_bytes(_png())
    # open_clip's training list: paths relative to the working directory, tab-separated
    (tmp_path / "lists" / "train.csv").write_text(
        "filepath\ttitle\nimgs/a.png\tan a\nimgs/b.png\ta b\nc.png\ta c beside the csv\n")
    monkeypatch.chdir(tmp_path)
    data = open_data("csv:lists/train.csv")
    assert data.n_images == 3 and data.paths[0] == tmp_path / "imgs" / "a.png"
    assert data.paths[2] == tmp_path / "lists" / "c.png"
    # named columns and separator, as open_clip's --csv-img-key / --csv-caption-key
    (tmp_path / "lists" / "named.csv").write_text("path;text\nimgs/a.png;first\n")
    named = open_data("csv:lists/named.csv:img-key=path,caption-key=text,sep=;")
    assert named.captions == ["first"]
    assert open_data(named.spec).captions == ["first"]
    (tmp_path / "lists" / "comma.csv").write_text("filepath,title\nimgs/b.png,comma\n")
    assert open_data("csv:lists/comma.csv").captions == ["comma"]
    assert os.getcwd() == str(tmp_path)
    np.testing.assert_array_equal(data.image_of_text, [0, 1, 2])


def test_karpathy_each_shape(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(_png())
    ok = {"images": [{"filename": "a.jpg", "split": "val",
                      "sentences": [{"tokens": ["a", "red", "box"]}, {"raw": "raw text"}]}]}
    (tmp_path / "k.json").write_text(json.dumps(ok))
    data = open_data(f"karpathy:{tmp_path}/k.json:{tmp_path}/img:train+val")
    assert data.captions == ["a red box", "raw text"]
    with pytest.raises(DataError, match="no images in split"):
        open_data(f"karpathy:{tmp_path}/k.json:{tmp_path}/img:test")


def test_every_file_spec_caps_its_probe_at_n_images(tmp_path):
    """n=N: the first N images with all their captions, the spec re-opens the same probe, and
    webdataset shards after the cap are never read."""
    (tmp_path / "img").mkdir()
    rows, images = ["filepath\ttitle"], []
    for i in range(5):
        (tmp_path / "img" / f"{i}.png").write_bytes(_png(i))
        rows += [f"{tmp_path}/img/{i}.png\tcap {i} a", f"{tmp_path}/img/{i}.png\tcap {i} b"]
        images.append({"filename": f"{i}.png", "split": "test",
                       "sentences": [{"raw": f"cap {i} a"}, {"raw": f"cap {i} b"}]})
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "k.json").write_text(json.dumps({"images": images}))
    _shard(tmp_path / "00000.tar", [{"__key__": f"{i:09d}", "jpg": _png(i), "txt": f"cap {i}"}
                                    for i in range(3)])
    (tmp_path / "00001.tar").write_bytes(b"not a tar")  # only read when the cap needs it
    specs = {"csv": f"csv:{tmp_path}/p.csv", "karpathy": f"karpathy:{tmp_path}/k.json:"
             f"{tmp_path}/img:test", "wds": f"wds:{tmp_path}/0000{{0..1}}.tar"}
    for kind, spec in specs.items():
        capped = open_data(spec + ":n=2")
        assert capped.n_images == 2, kind
        if kind != "wds":
            whole = open_data(spec)
            assert capped.captions == [c for c, i in zip(whole.captions, whole.image_of_text,
                                                         strict=True) if i < 2], kind
            assert capped.item_names() == whole.item_names()[:2]
        reopened = open_data(capped.spec)
        assert reopened.captions == capped.captions and reopened.n_images == 2, kind
        assert np.array_equal(np.asarray(capped.load_image(1)),
                              np.asarray(reopened.load_image(1)))
    with pytest.raises(DataError):
        open_data(specs["wds"])  # uncapped, the broken second shard is read
    for bad in ("n=0", "n=x", "n=-1"):
        with pytest.raises(DataError, match="positive whole number"):
            open_data(f"{specs['csv']}:{bad}")
