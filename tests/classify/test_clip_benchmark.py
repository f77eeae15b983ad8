"""Agreement with CLIP_benchmark itself (the ``clip-benchmark`` package, imported, not copied):
the same random-init open_clip model, an ImageFolder written here, the same class names and
templates -> the same zero-shot predictions image by image and the same scores; a linear probe
on the same features within a stated tolerance of CLIP_benchmark's."""

import json

import numpy as np
import pytest
import torch
from helpers import tiny_model
from PIL import Image

import sdtools
from sdtools.classify import probe_features
from sdtools.data.labels import OPENAI_IMAGENET_TEMPLATES

cb_zs = pytest.importorskip(
    "clip_benchmark.metrics.zeroshot_classification",
    reason="clip-benchmark is not installed (pip install -e '.[dev]' installs it)")
torchvision = pytest.importorskip("torchvision")

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 50), "blue": (40, 50, 200),
           "yellow": (220, 210, 40), "grey": (128, 128, 128), "purple": (130, 20, 140),
           "cyan": (30, 200, 210)}
NAMES = ["a red thing", "a green thing", "a blue thing", "a yellow thing", "a grey thing",
         "a purple thing", "a cyan thing"]  # display names differ from the folder names


def _write_folder(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for name, c in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = np.clip(np.array(c) + rng.normal(0, 60, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i:03d}.png")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cb")
    _write_folder(d / "test", 9, 0)
    # CLIP_benchmark's file formats: {dataset: [names]} and {dataset: [templates]}
    (d / "classnames.json").write_text(json.dumps({"colours": NAMES, "other": ["x"]}))
    (d / "templates.json").write_text(json.dumps({"colours": list(OPENAI_IMAGENET_TEMPLATES[:20])}))
    loaded, _ = tiny_model(3, image_size=24, patch_size=6)
    _fit_a_little(loaded, d / "train")
    return d, loaded


def _fit_a_little(loaded, root, steps=25):
    """A few full-batch steps of prompt classification on other images of the same colours:
    a random-init model puts every image in one class (its embeddings share one direction),
    which would make agreement trivial."""
    _write_folder(root, 4, 1)
    ds = torchvision.datasets.ImageFolder(str(root), transform=loaded.preprocess)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor(ds.targets)
    with torch.no_grad():  # the image tower learns towards the text tower's class prompts
        txt = loaded.model.encode_text(loaded.tokenizer(
            [OPENAI_IMAGENET_TEMPLATES[0].format(c=n) for n in NAMES]), normalize=True)
    opt = torch.optim.AdamW(loaded.model.visual.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few small steps: threads only contend
    try:
        for _ in range(steps):
            img = loaded.model.encode_image(x, normalize=True)
            loss = torch.nn.functional.cross_entropy(20 * img @ txt.T, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    loaded.model.eval()


def _their_scores(model, loader, tokenizer, templates, logits, target) -> dict:
    """CLIP_benchmark's own scores; where its ``accuracy`` fails under NumPy 2 (1.6.2 takes
    float() of a one-element array), top-k from its logits and its recall metric (scikit-
    learn's balanced accuracy) instead."""
    from sklearn.metrics import balanced_accuracy_score

    try:
        return cb_zs.evaluate(model, loader, tokenizer, NAMES, templates, "cpu", amp=False)
    except TypeError:
        top = logits.topk(5, dim=1).indices
        return {"acc1": float((top[:, 0] == target).float().mean()),
                "acc5": float((top == target[:, None]).any(1).float().mean()),
                "mean_per_class_recall": balanced_accuracy_score(target, logits.argmax(1))}


def test_zero_shot_matches_clip_benchmark_image_by_image(setup, tmp_path):
    d, loaded = setup
    templates = list(OPENAI_IMAGENET_TEMPLATES[:20])
    spec = (f"imagefolder:{d / 'test'}:classnames={d / 'classnames.json'}#colours,"
            f"templates={d / 'templates.json'}")
    ours = sdtools.zero_shot(loaded, spec, device="cpu", precision="fp32", cache=True,
                             cache_dir=tmp_path, batch_size=16)

    ds = torchvision.datasets.ImageFolder(str(d / "test"), transform=loaded.preprocess)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False)
    model = loaded.model.eval()
    clf = cb_zs.zero_shot_classifier(model, loaded.tokenizer, NAMES, templates, "cpu", amp=False)
    logits, target = cb_zs.run_classification(model, clf, loader, "cpu", amp=False)
    theirs = _their_scores(model, loader, loaded.tokenizer, templates, logits, target)

    # the labels: torchvision's ImageFolder order and class indices
    np.testing.assert_array_equal(ours.labels, target.numpy())
    assert ours.n_images == len(ds) == 63
    # predictions image by image, and the class embeddings themselves
    np.testing.assert_array_equal(ours.pred, logits.argmax(1).numpy())
    assert len(set(ours.pred.tolist())) > 2 and 30 < ours.top1 < 100  # not degenerate
    from sdtools.models.extract import ModelRef, embed_classes

    w = embed_classes(ModelRef(loaded, cache=False), NAMES, templates, "cpu", cache=False,
                      precision="fp32")
    np.testing.assert_allclose(w, clf.T.numpy(), atol=1e-5)
    # the scores (CLIP_benchmark reports fractions, we percent)
    assert ours.top1 == pytest.approx(100 * theirs["acc1"], abs=1e-4)  # theirs in float32
    assert ours.top5 == pytest.approx(100 * theirs["acc5"], abs=1e-4)  # theirs in float32
    assert ours.mean_per_class_recall == pytest.approx(
        100 * theirs["mean_per_class_recall"], abs=1e-4)  # theirs in float32
    # the class embeddings came from the cache on a second call: same result, no model needed
    again = sdtools.zero_shot(loaded, spec, device="cpu", precision="fp32", cache=True,
                              cache_dir=tmp_path)
    np.testing.assert_array_equal(again.pred, ours.pred)
    assert len(list(tmp_path.glob("*.classes.npz"))) == 1


def test_builtin_templates_are_clip_benchmarks_imagenet_templates():
    import clip_benchmark

    from sdtools.data.labels import read_templates

    path = (__import__("pathlib").Path(clip_benchmark.__file__).parent / "datasets"
            / "en_zeroshot_classification_templates.json")
    assert read_templates(f"{path}#imagenet1k") == OPENAI_IMAGENET_TEMPLATES
    assert read_templates("openai") == OPENAI_IMAGENET_TEMPLATES


LP_TOLERANCE = 5.0  # percentage points: two optimisers (L-BFGS, AdamW) of one model family
EPOCHS = 10  # CLIP_benchmark's default is 10


@pytest.mark.slow
def test_linear_probe_within_tolerance_of_clip_benchmark(monkeypatch):
    """CLIP_benchmark's probe (AdamW on a linear layer, weight decay chosen on a validation
    split by the same search) is written for CUDA; here its .cuda() calls are made no-ops so
    that it runs on the CPU on the same features."""
    cb_lp = pytest.importorskip("clip_benchmark.metrics.linear_probe")
    rng = np.random.default_rng(0)
    k, dim = 6, 16
    centres = rng.standard_normal((k, dim))

    def draw(n):
        y = np.repeat(np.arange(k), n)
        return (centres[y] + 1.1 * rng.standard_normal((y.size, dim))).astype(np.float32), y

    (xtr, ytr), (xva, yva), (xte, yte) = draw(40), draw(10), draw(30)
    xtr_all, ytr_all = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    ours = probe_features(xtr_all, ytr_all, xte, yte, val_proportion=0.2, seed=0)

    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **kw: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **kw: self)
    try:
        cb_lp.accuracy(torch.eye(2), torch.arange(2.0))
    except TypeError:  # 1.6.2's accuracy() fails under NumPy 2: the same top-k share instead
        monkeypatch.setattr(cb_lp, "accuracy", lambda out, target, topk=(1,): [
            float((out.topk(k, 1).indices == target[:, None]).any(1).float().mean())
            for k in topk])

    def unit(x):
        return torch.from_numpy(x / np.linalg.norm(x, axis=1, keepdims=True))

    def loader(x, y, shuffle):
        ds = cb_lp.FeatureDataset(unit(x), torch.from_numpy(y))
        return torch.utils.data.DataLoader(ds, batch_size=128, shuffle=shuffle)

    torch.manual_seed(0)
    wds = np.logspace(-6, 2, num=97).tolist()
    args = (loader(xtr, ytr, True), loader(xva, yva, False), dim, k, 0.1, EPOCHS, False,
            "cpu", False, 0)
    peak = cb_lp.find_peak(wds, list(range(0, 97, 16)), *args)
    span = 8
    while span:
        peak = cb_lp.find_peak(wds, [max(peak - span, 0), peak, min(peak + span, 96)], *args)
        span //= 2
    model = cb_lp.train(loader(xtr_all, ytr_all, True), dim, k, wds[peak], 0.1, EPOCHS, False,
                        "cpu", 0)
    logits, target = cb_lp.infer(model, loader(xte, yte, False), False, "cpu")
    theirs = 100 * float((logits.argmax(1) == target).float().mean())
    assert 40 < theirs < 100 and 40 < ours.top1 < 100  # neither at chance nor saturated
    print(f"linear probe top-1: ours {ours.top1:.2f}, CLIP_benchmark {theirs:.2f}")
    assert abs(ours.top1 - theirs) <= LP_TOLERANCE, (ours.top1, theirs)
