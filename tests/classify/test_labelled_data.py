"""Labelled data specs: ImageFolder, CSV with a label column, webdataset ``cls`` members; class
names, templates, per-class caps, and what each one refuses."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from sdtools.data.labels import SIMPLE_TEMPLATES, read_classnames, read_templates
from sdtools.data.specs import display_names, open_data, parse_spec
from sdtools.errors import DataError


def _img(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """b_cat (3 images), a_dog (2), c_sea_lion (4): labels follow sorted folder names."""
    root = tmp_path / "val"
    for cls, n in (("b_cat", 3), ("a_dog", 2), ("c_sea_lion", 4)):
        for i in range(n):
            _img(root / cls / f"{i}.png", 10 * i)
    (root / "a_dog" / "notes.txt").write_text("not an image")
    _img(root / "a_dog" / "more" / "x.png", 200)  # a subfolder: after the folder's own files
    (root / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    return root


def test_imagefolder_labels_follow_torchvisions_order(folder):
    torchvision = pytest.importorskip("torchvision")
    data = open_data(f"imagefolder:{folder}")
    names, y = data.class_labels()["class"]
    assert names == ("a dog", "b cat", "c sea lion")
    (folder / ".ipynb_checkpoints").rmdir()  # torchvision would take it for an empty class
    ref = torchvision.datasets.ImageFolder(str(folder))
    assert y.tolist() == ref.targets
    assert [str(p) for p in data.paths] == [s for s, _ in ref.samples]
    assert data.captions[0] == "a photo of a a dog." and data.image_of_text.tolist() == list(
        range(10))
    assert data.class_templates("class") == SIMPLE_TEMPLATES
    sub = data.subset([9, 0])
    assert sub.class_labels()["class"][1].tolist() == [2, 0]
    assert sub.class_templates("class") == SIMPLE_TEMPLATES
    # a spec names the dataset completely: it opens again from data.spec
    assert open_data(data.spec).class_labels()["class"][1].tolist() == y.tolist()
    assert parse_spec(f"imagefolder:{folder}").name == "val"


def test_per_class_cap_and_class_name_files(folder, tmp_path):
    data = open_data(f"imagefolder:{folder}:n=2")
    assert data.class_labels()["class"][1].tolist() == [0, 0, 1, 1, 2, 2]
    assert data.paths[1].name == "1.png"  # the folder's own files before its subfolder's
    lines = tmp_path / "names.txt"
    lines.write_text("dog\n\ncat\nsea lion\n")
    d2 = open_data(f"imagefolder:{folder}:classnames={lines},templates=openai")
    assert d2.class_labels()["class"][0] == ("dog", "cat", "sea lion")
    assert len(d2.class_templates("class")) == 80
    assert d2.captions[0] == "a bad photo of a dog."
    cb = tmp_path / "cb.json"  # CLIP_benchmark's layout: one list per dataset
    cb.write_text(json.dumps({"pets": ["d", "c", "s"], "cars": ["x"]}))
    assert read_classnames(f"{cb}#pets") == ("d", "c", "s")
    with pytest.raises(DataError, match="several sets"):
        read_classnames(str(cb))
    tj = tmp_path / "t.json"
    tj.write_text(json.dumps(["itap of a {c}.", "a {c}, {{literally}}."]))
    assert read_templates(str(tj)) == ("itap of a {c}.", "a {c}, {{literally}}.")
    tt = tmp_path / "t.txt"  # one template a line, as class names may be given
    tt.write_text("itap of a {c}.\n\n  a {c}, {{literally}}.\n")
    assert read_templates(str(tt)) == read_templates(str(tj))
    tt.write_text("a photo\n")
    with pytest.raises(DataError, match="does not name the class"):
        read_templates(str(tt))


def test_csv_label_column_by_name_and_by_index(tmp_path):
    for i in range(5):
        _img(tmp_path / f"{i}.png", i)
    (tmp_path / "named.csv").write_text(
        "filepath,label\n" + "".join(f"{i}.png,{'dog' if i % 2 else 'cat'}\n" for i in range(5)))
    data = open_data(f"csv:{tmp_path / 'named.csv'}:label-key=label")
    names, y = data.class_labels()["class"]
    assert names == ("cat", "dog") and y.tolist() == [0, 1, 0, 1, 0]
    capped = open_data(f"csv:{tmp_path / 'named.csv'}:label-key=label,n=1")
    assert capped.class_labels()["class"][1].tolist() == [0, 1]  # n= counts per class
    (tmp_path / "names.json").write_text(json.dumps(["zero", "one", "two"]))
    (tmp_path / "idx.csv").write_text(
        "filepath,y\n" + "".join(f"{i}.png,{i % 3}\n" for i in range(5)))
    d = open_data(f"csv:{tmp_path / 'idx.csv'}:label-key=y,classnames={tmp_path / 'names.json'}")
    assert d.class_labels()["class"] == (("zero", "one", "two"), pytest.approx([0, 1, 2, 0, 1]))
    assert d.captions[1] == "a photo of a one."
    # a missing file with skip-missing: the class keeps its other image
    (tmp_path / "gap.csv").write_text("filepath,label\n0.png,cat\n9.png,cat\n1.png,dog\n")
    gap = open_data(f"csv:{tmp_path / 'gap.csv'}:label-key=label,skip-missing")
    assert gap.skipped == 1 and gap.class_labels()["class"][1].tolist() == [0, 1]


def _png(v):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), v, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_webdataset_cls_members(tmp_path):
    labels = [2, 0, 1, 2, 0, 1]
    for s in range(2):
        _tar(tmp_path / f"{s:03d}.tar", [m for i in range(3) for m in (
            (f"{s}{i:04d}.webp", _png(i)), (f"{s}{i:04d}.cls", str(labels[3 * s + i]).encode()))])
    (tmp_path / "classnames.txt").write_text("apple\nbanana\ncherry\n")
    spec = (f"wds:{tmp_path}/{{000..001}}.tar:label-key=cls,"
            f"classnames={tmp_path / 'classnames.txt'}")
    data = open_data(spec)
    names, y = data.class_labels()["class"]
    assert names == ("apple", "banana", "cherry") and y.tolist() == labels
    assert data.n_images == 6 and data.captions[0] == "a photo of a cherry."
    assert data.load_image(1).getpixel((0, 0)) == (1, 1, 1)
    assert open_data(data.spec).class_labels()["class"][1].tolist() == labels
    assert open_data(spec + ",n=1").class_labels()["class"][1].tolist() == [2, 0, 1]


def test_display_names_of_two_image_folders(tmp_path):
    a, b = tmp_path / "a" / "val", tmp_path / "b" / "val"
    assert display_names([f"imagefolder:{a}", f"imagefolder:{b}"]) == ["a/val", "b/val"]


BAD = [
    ("imagefolder:{d}/nowhere", "no such folder"),
    ("imagefolder:{d}/empty", "no class folder"),
    ("imagefolder:{d}/hollow", "has no image"),
    ("imagefolder:{d}/ok:classnames={d}/two.txt", "2 classes"),
    ("imagefolder:{d}/ok:templates={d}/noc.json", "does not name the class"),
    ("imagefolder:{d}/ok:templates={d}/brace.json", "cannot be filled"),
    ("imagefolder:{d}/ok:templates=fancy", "not a built-in set"),
    ("imagefolder:{d}/ok:classnames={d}/dup.txt", "appears twice"),
    ("imagefolder:{d}/ok:n=0", "positive whole number"),
    ("imagefolder:{d}/ok:bogus=1", "unknown option"),
    ("csv:{d}/l.csv:label-key=nolabel", "no column 'nolabel'"),
    ("csv:{d}/l.csv:label-key=idx,classnames={d}/two.txt", "outside 0..1"),
    ("csv:{d}/l.csv:label-key=name,classnames={d}/two.txt", "not a class name"),
    ("csv:{d}/l.csv:label-key=gap", "empty label"),
    ("csv:{d}/l.csv:label-key=sparse", "has no image"),
    ("csv:{d}/twice.csv:label-key=label", "two labels"),
    ("csv:{d}/l.csv:classnames={d}/two.txt", "label-key"),
    ("wds:{d}/nocls.tar:label-key=cls", "'cls' member"),
]


@pytest.fixture
def bad(tmp_path, folder):
    d = tmp_path
    (d / "empty").mkdir()
    (d / "hollow" / "a").mkdir(parents=True)
    _img(d / "hollow" / "b" / "0.png", 0)
    (d / "ok").symlink_to(folder)
    (d / "two.txt").write_text("x\ny\n")
    (d / "dup.txt").write_text("x\nx\ny\n")
    (d / "noc.json").write_text(json.dumps(["a photo of a thing."]))
    (d / "brace.json").write_text(json.dumps(["a photo of a {}."]))
    for i in range(3):
        _img(d / f"{i}.png", i)
    (d / "l.csv").write_text("filepath,idx,name,gap,sparse\n0.png,0,x,a,0\n1.png,2,z,,2\n"
                             "2.png,1,y,b,2\n")
    (d / "twice.csv").write_text("filepath,label\n0.png,a\n0.png,b\n")
    _tar(d / "nocls.tar", [("0.png", _png(0)), ("0.txt", b"a caption")])
    return d


@pytest.mark.parametrize("spec, msg", BAD, ids=[b[1] for b in BAD])
def test_bad_labelled_specs_are_one_line_data_errors(bad, spec, msg):
    with pytest.raises(DataError, match=msg) as exc:
        open_data(spec.format(d=bad))
    assert "\n" not in str(exc.value)
