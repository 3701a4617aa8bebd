"""The real-handwriting sets: loaders, checksums, downloads, splits, and how they become
training images (training/handwriting.py, lzw.py, render.py, mixing.py).

The loaders read the shared copies (../shared/handwriting); downloads go to a real HTTP server
on 127.0.0.1 that serves those files (and broken variants of them) the way their public homes do.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.handwriting import handwriting_dir
from tests.http_support import serve
from tests.lzw_encode import compress_z
from training import handwriting as H
from training import mixing
from training.fetch import DataError
from training.lzw import unlzw
from training.render import on_paper, render

COUNTS = {
    "pendigits": {"train": 5996, "dev": 1498},
    "unipen": {"train": 14253, "dev": 1700},
    "scans": {"train": 2680, "dev": 1197},
    "optdigits": {"train": 1934, "dev": 1797},
    "mfeat": {"train": 2000},
    "semeion": {"dev": 1593},
}
FIXTURES = Path(__file__).parent / "fixtures" / "lzw"


@pytest.fixture(scope="module")
def root() -> Path:
    return handwriting_dir()


@pytest.fixture(scope="module")
def every_sample(root: Path) -> dict[str, H.HandwritingSet]:
    return {name: H.load_set(name, (H.TRAIN, H.DEV), root, progress=False) for name in COUNTS}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing may fall back to $HANDWRITING_DIR or the real user cache; returns the cache."""
    monkeypatch.delenv("HANDWRITING_DIR", raising=False)
    monkeypatch.setenv("DIGIT_APP_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "handwriting"


# ----------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("name", COUNTS)
def test_each_loader_gives_every_sample_its_label_writer_and_split(
    every_sample: dict[str, H.HandwritingSet], name: str
) -> None:
    data = every_sample[name]
    counts = {split: sum(s.split == split for s in data.samples) for split in ("train", "dev")}
    assert {k: v for k, v in counts.items() if v} == COUNTS[name]
    for split in COUNTS[name]:
        assert {s.label for s in data.samples if s.split == split} == set(range(10))
    for s in data.samples[:: max(1, len(data.samples) // 200)]:
        assert (s.strokes is None) != (s.image is None)
        if s.strokes is not None:
            assert s.strokes and all(
                p.ndim == 2 and p.shape[1] == 2 and np.isfinite(p).all() for p in s.strokes
            )
        else:
            assert s.image.dtype == np.uint8 and s.image.ndim == 2 and s.image.max() > s.image.min()
    assert set(data.files) == set(H.spec(name).files)
    assert data.source == str(handwriting_dir())


@pytest.mark.parametrize("name", ["pendigits", "unipen", "scans"])
def test_no_writer_is_in_both_train_and_dev(every_sample: dict[str, H.HandwritingSet], name: str) -> None:
    data = every_sample[name]
    train = {s.writer for s in data.split(H.TRAIN)}
    dev = {s.writer for s in data.split(H.DEV)}
    assert train and dev and not train & dev
    assert H.UNKNOWN_WRITER not in train | dev


def test_writer_ids_and_suspects_as_the_data_describes_them(
    every_sample: dict[str, H.HandwritingSet],
) -> None:
    pen = every_sample["pendigits"]
    assert {s.writer for s in pen.split(H.DEV)} == {f"pendigits/{w}" for w in range(25, 31)}
    assert {s.writer for s in every_sample["scans"].split(H.DEV)} == {"scans/0006", "scans/0007"}
    uni = every_sample["unipen"]
    assert len({s.writer for s in uni.samples}) == 258
    assert sum(s.suspect is not None for s in uni.samples) == 121


def test_pen_strokes_grow_downward_as_on_a_canvas(every_sample: dict[str, H.HandwritingSet]) -> None:
    """A 7 starts at its top, in both pen sets (upside down, nearly all would start low)."""
    for name in ("pendigits", "unipen"):
        sevens = [s for s in every_sample[name].samples if s.label == 7][:200]
        starts_high = [s.strokes[0][0, 1] < np.concatenate(s.strokes)[:, 1].mean() for s in sevens]
        assert np.mean(starts_high) > 0.8, name


def test_a_plain_load_holds_the_train_split_only(root: Path) -> None:
    data = H.load_set("optdigits", root=root, progress=False)
    assert {s.split for s in data.samples} == {H.TRAIN}
    assert list(data.files) == ["optdigits/optdigits-orig.tra"], "the dev file is not even read"


def test_unknown_set_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown handwriting set 'emnist'"):
        H.load_set("emnist")


# ----------------------------------------------------------------------------- errors
def _copy_set(root: Path, name: str, dest: Path) -> Path:
    for rel in H.spec(name).files:
        if (root / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / rel, dest / rel)
    return dest


def test_an_altered_file_is_named_in_one_line(root: Path, tmp_path: Path, no_env: Path) -> None:
    mine = _copy_set(root, "mfeat", tmp_path / "mine")
    bad = mine / "mfeat" / "mfeat-pix.txt"
    bad.write_bytes(bad.read_bytes().replace(b"6", b"5", 1))
    with pytest.raises(DataError) as err:
        H.load_set("mfeat", root=mine, progress=False)
    message = str(err.value)
    assert str(bad) in message and "SHA-256" in message and "\n" not in message
    assert bad.exists(), "a user's own data folder is never modified"


def test_a_missing_curated_pen_file_says_where_to_get_it(tmp_path: Path, no_env: Path) -> None:
    with pytest.raises(DataError) as err:
        H.load_set("unipen", root=tmp_path, progress=False)
    message = str(err.value)
    assert message.startswith("unipen: unipen/unipen-1a.json is missing")
    assert str(tmp_path / "unipen") in message and "zenodo" in message and "\n" not in message


@pytest.mark.parametrize(
    ("parse", "name", "payload"),
    [
        (H.parse_pendigits, "pendigits/pendigits-train.json", b'{"samples": [{"label": 1}]}'),
        (H.parse_pendigits, "pendigits/pendigits-train.json", b"<html>not json</html>"),
        (
            H.parse_unipen,
            "unipen/unipen-1a.json",
            b'{"samples": [{"label": 1, "writer": "a", "strokes": 5}]}',
        ),
        (H.parse_mfeat, "mfeat/mfeat-pix.txt", b"0 1 2\n" * 2000),
        (H.parse_mfeat, "mfeat/mfeat-pix.txt", b"0 1 2\n"),
        (H.parse_optdigits, "optdigits/optdigits-orig.tra", b"0" * 32 + b"\n" + b"01x" * 10 + b"\n"),
        (H.parse_semeion, "semeion/semeion.data", b"1 0 1\n"),
        (H.parse_scans, "scans/0001_CH4M/3/number-1.png", b"not a png"),
    ],
)
def test_malformed_files_get_a_one_line_error_naming_them(parse, name: str, payload: bytes) -> None:
    with pytest.raises(DataError) as err:
        parse({name: payload})
    assert str(err.value).startswith(name) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- .Z archives
def _words() -> bytes:
    """The text the committed fixtures were made from (`compress -b 10` and `-b 16`)."""
    rng = random.Random(7)
    parts = []
    for _ in range(6):
        alphabet = rng.sample("abcdefghijklmnopqrstuvwxyz0123456789", 6)
        words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(200)]
        parts.append(" ".join(rng.choice(words) for _ in range(3000)))
    return "\n".join(parts).encode()


@pytest.mark.parametrize("fixture", ["words-b10.Z", "words-b16.Z"])
def test_unlzw_reads_what_compress_wrote(fixture: str) -> None:
    """b10 fills its table several times, so the stream holds clear codes."""
    assert unlzw((FIXTURES / fixture).read_bytes()) == _words()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([9, 12, 16]))
def test_unlzw_round_trips(data: bytes, max_bits: int) -> None:
    assert unlzw(compress_z(data, max(10, max_bits))) == data


@pytest.mark.parametrize("payload", [b"", b"\x1f\x8b\x08", b"\x1f\x9d\x70", b"\x1f\x9d\x90\xff\xff\xff\xff"])
def test_unlzw_refuses_what_is_not_a_valid_stream(payload: bytes) -> None:
    with pytest.raises(DataError):
        unlzw(payload, "x.Z")


def test_unlzw_refuses_a_truncated_stream() -> None:
    z = compress_z(_words())
    with pytest.raises(DataError):
        unlzw(z[:-1] + b"\xff\xff", "x.Z")


# ----------------------------------------------------------------------------- downloads
@dataclass
class Homes:
    """A local HTTP server standing in for UCI and the scans' repository."""

    base: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def homes(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homes]:
    site = tmp_path_factory.mktemp("homes")
    uci = site / "uci"
    (uci / "mfeat").mkdir(parents=True)
    shutil.copy(root / "mfeat" / "mfeat-pix.txt", uci / "mfeat" / "mfeat-pix")
    (uci / "optdigits").mkdir()
    (uci / "optdigits" / "optdigits-orig.tra.Z").write_bytes(
        compress_z((root / "optdigits" / "optdigits-orig.tra").read_bytes())
    )
    (site / "altered" / "mfeat").mkdir(parents=True)
    (site / "altered" / "mfeat" / "mfeat-pix").write_bytes(b"0 " * 240 + b"\n")
    (site / "repo").symlink_to(root / "scans")
    log: list[str] = []
    with serve(site, log) as base:
        yield Homes(base, site, log)


def test_public_sets_are_downloaded_verified_and_cached(
    homes: Homes, root: Path, monkeypatch: pytest.MonkeyPatch, no_env: Path
) -> None:
    monkeypatch.setattr(H, "UCI", f"{homes.base}/uci")
    for name in ("mfeat", "optdigits"):
        data = H.load_set(name, progress=False)
        reference = H.load_set(name, root=root, progress=False)
        assert [s.label for s in data.samples] == [s.label for s in reference.samples]
        for rel in data.files:
            assert (no_env / rel).read_bytes() == (root / rel).read_bytes()
    assert not list(no_env.rglob("*.part")), "no temp file is left behind"
    served = len(homes.requests)
    H.load_set("mfeat", progress=False)
    assert len(homes.requests) == served, "a cached file is not downloaded again"
    assert not any("windep" in r for r in homes.requests), "dev files are never downloaded"


def test_a_home_serving_another_file_is_refused(
    homes: Homes, monkeypatch: pytest.MonkeyPatch, no_env: Path
) -> None:
    monkeypatch.setattr(H, "UCI", f"{homes.base}/altered")
    with pytest.raises(DataError, match="no mirror reachable or valid") as err:
        H.load_set("mfeat", progress=False)
    assert "SHA-256" in str(err.value) and f"{homes.base}/altered/mfeat/mfeat-pix" in str(err.value)
    assert not no_env.exists() or not list(no_env.rglob("*")) or not list(no_env.rglob("*.txt"))


@pytest.mark.slow  # 2,680 files, one request each
def test_scans_download_only_the_train_writers(
    homes: Homes, monkeypatch: pytest.MonkeyPatch, no_env: Path
) -> None:
    monkeypatch.setattr(H, "SCANS_REPO", f"{homes.base}/repo")
    data = H.load_set("scans", progress=False)
    assert len(data.samples) == COUNTS["scans"]["train"]
    fetched = {r.split("/")[2][:4] for r in homes.requests if r.startswith("/repo/")}
    assert fetched == set(H.SCANS_TRAIN_WRITERS)


def test_missing_sets_are_left_out_only_when_allowed(
    homes: Homes, monkeypatch: pytest.MonkeyPatch, no_env: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(H, "UCI", f"{homes.base}/uci")
    with pytest.raises(DataError, match="pendigits"):
        H.load_sets(["mfeat", "pendigits"], root=tmp_path / "empty", progress=False)
    loaded, missing = H.load_sets(
        ["mfeat", "pendigits"], root=tmp_path / "empty", allow_missing=True, progress=False
    )
    assert list(loaded) == ["mfeat"] and list(missing) == ["pendigits"]
    assert "pendigits-train.json is missing" in missing["pendigits"]


# ----------------------------------------------------------------------------- splits
def test_validation_writers_are_stable_and_a_tenth() -> None:
    writers = [f"w{i}" for i in range(40)] + [H.UNKNOWN_WRITER] * 5
    held = mixing.validation_writers(writers, 0.1, seed=3)
    assert len(held) == 4 and H.UNKNOWN_WRITER not in held
    assert held == mixing.validation_writers(list(reversed(writers)), 0.1, seed=3)
    assert held != mixing.validation_writers(writers, 0.1, seed=4)
    assert mixing.validation_writers(["a", "b"], 0.5, seed=0) == set(), "two writers cannot spare one"
    assert len(mixing.validation_writers(["a", "b", "c", "d", "e"], 0.1, seed=0)) == 1


def test_no_dev_writer_can_reach_training_or_validation(
    root: Path, every_sample: dict[str, H.HandwritingSet]
) -> None:
    """What training reads (`load_sets`, then `split_by_writer`) holds no dev writer and no dev
    sample, and training and validation share no writer."""
    loaded, missing = H.load_sets(H.TRAIN_SETS, root, progress=False)
    assert not missing
    for name, data in loaded.items():
        dev = every_sample[name].split(H.DEV)
        dev_ids = {s.ident for s in dev}
        dev_writers = {s.writer for s in dev} - {H.UNKNOWN_WRITER}
        samples = mixing.train_samples(data)
        train, val, held = mixing.split_by_writer(samples, 0.1, seed=42)
        assert len(train) + len(val) == len(samples)
        for part in (train, val):
            assert not {s.ident for s in part} & dev_ids, name
            assert not {s.writer for s in part} & dev_writers, name
        assert not {s.writer for s in train} & held
        assert all(s.suspect is None for s in samples)


def test_train_samples_refuses_a_set_holding_dev_samples(every_sample: dict[str, H.HandwritingSet]) -> None:
    with pytest.raises(ValueError, match="outside the train split"):
        mixing.train_samples(every_sample["pendigits"])


# ----------------------------------------------------------------------------- rendering
def test_pen_samples_become_several_centred_drawings(every_sample: dict[str, H.HandwritingSet]) -> None:
    samples = every_sample["pendigits"].split(H.TRAIN)[:12]
    r = render(samples, copies=4, seed=5, workers=1)
    assert r.images.shape == (12, 4, 28, 28) and r.dropped == 0
    assert list(r.labels) == [s.label for s in samples]
    again = render(samples, copies=4, seed=5, workers=1)
    np.testing.assert_array_equal(r.images, again.images)
    other = render(samples, copies=4, seed=6, workers=1)
    np.testing.assert_array_equal(r.images[:, 0], other.images[:, 0])  # the plain copy is fixed
    assert (r.images[:, 1:] != other.images[:, 1:]).any()
    ink = r.images.astype(np.float64)
    ys = (ink.sum(axis=3) * np.arange(28)).sum(axis=2) / ink.sum(axis=(2, 3))
    assert np.abs(ys - 14).max() < 2.5, "every copy is centred by its centre of mass, as MNIST"
    assert (r.images[:, 1:] != r.images[:, :1]).any(axis=(2, 3)).all(), "each copy is drawn its own way"


def test_a_rendering_is_cached_and_a_damaged_cache_file_made_again(
    every_sample: dict[str, H.HandwritingSet], tmp_path: Path
) -> None:
    samples = every_sample["pendigits"].split(H.TRAIN)[:6]
    first = render(samples, copies=2, seed=1, workers=1, cache=tmp_path)
    (kept,) = list(tmp_path.glob("*.npz"))
    again = render(samples, copies=2, seed=1, workers=1, cache=tmp_path)
    np.testing.assert_array_equal(first.images, again.images)
    assert again.writers == first.writers and list(tmp_path.glob("*.npz")) == [kept]
    render(samples[:5], copies=2, seed=1, workers=1, cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2, "other samples, another file"
    kept.write_bytes(b"not an npz")
    third = render(samples, copies=2, seed=1, workers=1, cache=tmp_path)
    np.testing.assert_array_equal(first.images, third.images)
    assert np.load(kept)["images"].shape == first.images.shape


def test_bitmaps_filling_their_frame_are_read_as_digits_not_as_paper(
    every_sample: dict[str, H.HandwritingSet],
) -> None:
    """mfeat's digits touch every edge: read raw, some look like paper with a digit-shaped hole."""
    samples = every_sample["mfeat"].samples[::20]
    r = render(samples, copies=1, seed=0, workers=1)
    border = np.concatenate([r.images[:, 0, :2].ravel(), r.images[:, 0, -2:].ravel()])
    assert (border > 64).mean() < 0.01
    assert on_paper(np.full((4, 4), 255, np.uint8)).max() == 255


def test_a_sample_without_a_digit_is_dropped() -> None:
    blank = H.Sample(3, "w", H.TRAIN, "blank", image=np.full((40, 40), 255, np.uint8))
    dot = H.Sample(4, "w", H.TRAIN, "dot", strokes=(np.array([[5.0, 5.0]]),))
    r = render([blank, dot], copies=2, seed=0, workers=1)
    assert r.images.shape[0] + r.dropped == 2 and r.dropped >= 1


# ----------------------------------------------------------------------------- the mix
def _source(name: str, value: int, n: int, share: float, variant: int | None = None) -> mixing.Source:
    images = np.full((n, 2, 28, 28), value, np.uint8)
    if variant is not None:
        images[:, 1] = variant
    return mixing.Source(
        name, images, np.full(n, value % 10, np.uint8), 0.0 if variant is None else 1.0, share
    )


def test_the_mix_draws_each_source_by_its_share() -> None:
    sources = [_source("a", 10, 50, 3.0), _source("b", 20, 7, 1.0), _source("c", 30, 9, 0.0)]
    values = []
    for x, _ in mixing.dataset(sources, 64, seed=1).take(40):
        values += x.numpy()[:, 0, 0].tolist()
    share_b = values.count(20) / len(values)
    assert 30 not in values, "a source with no share is never drawn"
    assert 0.2 < share_b < 0.3


def test_the_mix_uses_variants_as_configured() -> None:
    never = [_source("a", 10, 20, 1.0)]
    always = [_source("a", 10, 20, 1.0, variant=99)]
    first = next(iter(mixing.dataset(never, 32, seed=0)))[0].numpy()
    second = next(iter(mixing.dataset(always, 32, seed=0)))[0].numpy()
    assert (first == 10).all() and (second == 99).all()


def test_hash_of_the_scans_manifest_matches_the_shared_files(root: Path) -> None:
    """The manifest's hashes are those of the files tests and CI read (a spot check of 50)."""
    files = H.spec("scans").files
    for rel in sorted(files)[::80]:
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == files[rel]
