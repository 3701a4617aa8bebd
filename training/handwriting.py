"""Real handwriting of many writers: one loader per set, every file verified by SHA-256.

In: a set's name and the splits wanted. Out: a `HandwritingSet` whose samples each carry their
label, writer and split, as pen strokes (y down, the set's own units) or as a grey image (ink
and paper as written). The files are looked for in `--handwriting-dir` / `$HANDWRITING_DIR`,
then in the user cache; sets whose public files are used as they are (optdigits and mfeat from
the UCI archive, the scans from their public repository) are otherwise downloaded into the
cache, written atomically and verified, as MNIST is. The pen files are the project's curated
conversions (writer ids, splits, orientation): a missing one is reported with where to get it.

Why: MNIST's American writers lack the conventions the app must read (flagged 1s, crossed 7s,
closed 4s, open-loop 9s); these sets have them. Each set has a role (README of the data):
`train` splits may be learned from, `dev` splits only measured, so every sample says which.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_app.config import get_settings
from training.fetch import DataError, sha256
from training.fetch import download as fetch_file
from training.lzw import unlzw

TRAIN, DEV = "train", "dev"
UNKNOWN_WRITER = ""  # optdigits and mfeat name no writers: such samples are never validation data
MANIFESTS = Path(__file__).resolve().parent / "manifests"
UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
SCANS_REPO = "https://raw.githubusercontent.com/kensanata/numbers/52ca7a647d3724bf491cd7c0e1cca67ba41fbd1c"
SCANS_TRAIN_WRITERS = ("0001", "0002", "0003", "0004", "0005")


@dataclass(frozen=True)
class Sample:
    """One handwritten digit: pen `strokes` or a grey `image`, never both."""

    label: int
    writer: str
    split: str  # TRAIN or DEV
    ident: str  # where in the set it comes from, for error lists
    strokes: tuple[np.ndarray, ...] | None = None  # (N, 2) float64 points each, y growing downward
    image: np.ndarray | None = None  # uint8 grey, as written (dark ink on paper, or ink high)
    suspect: str | None = None  # why the data's curators doubt it (UNIPEN): left out of training
    ink_high: bool = False  # a bitmap with ink as high values and no paper margin (optdigits, mfeat)


@dataclass(frozen=True)
class HandwritingSet:
    name: str
    samples: list[Sample]
    files: dict[str, str]  # relative path -> verified SHA-256
    source: str  # the folder the files were read from

    def split(self, *splits: str) -> list[Sample]:
        return [s for s in self.samples if s.split in splits]


@dataclass(frozen=True)
class SetSpec:
    """What the project knows of a set: its files and hashes, where they live, who made it."""

    name: str
    kind: str  # "pen" or "image"
    files: dict[str, str]  # relative path -> SHA-256 of the file as the project reads it
    file_split: dict[str, str]  # relative path -> the split its samples belong to (TRAIN/DEV/"mixed")
    urls: dict[str, tuple[str, ...]]  # public homes of the train files; empty: curated, not downloadable
    parse: Callable[[dict[str, bytes]], list[Sample]]
    home: str  # where a user gets it
    licence: str
    citation: str

    def needed(self, splits: Sequence[str]) -> list[str]:
        return [f for f, s in self.file_split.items() if s in splits or s == "mixed"]


# --- parsers: raw bytes of the set's files -> samples ------------------------------------------


def _strokes(raw: list, flip_height: float | None) -> tuple[np.ndarray, ...]:
    arrays = []
    for stroke in raw:
        pts = np.asarray(stroke, np.float64).reshape(-1, 2)
        if flip_height is not None:
            pts[:, 1] = flip_height - pts[:, 1]
        arrays.append(pts)
    return tuple(arrays)


def _pen_samples(raw: bytes, name: str, prefix: str) -> list[Sample]:
    try:
        data = json.loads(raw)
        flip = float(data.get("box", (0, 0))[1]) if data.get("y_up") else None
        return [
            Sample(
                label=int(s["label"]),
                writer=f"{prefix}{s['writer']}",
                split=str(s["split"]),
                ident=f"{name}:{i}",
                strokes=_strokes(s["strokes"], flip),
                suspect=s.get("suspect"),
            )
            for i, s in enumerate(data["samples"])
        ]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{name}: malformed pen-trajectory file ({type(exc).__name__}: {exc})") from exc


def parse_pendigits(files: dict[str, bytes]) -> list[Sample]:
    return _pen_samples(
        files["pendigits/pendigits-train.json"], "pendigits/pendigits-train.json", "pendigits/"
    )


def parse_unipen(files: dict[str, bytes]) -> list[Sample]:
    return _pen_samples(files["unipen/unipen-1a.json"], "unipen/unipen-1a.json", "unipen/")


def parse_optdigits(files: dict[str, bytes]) -> list[Sample]:
    """32 lines of 32 '0'/'1' then a line with the label, after a text header."""
    samples = []
    for name, data in files.items():
        split = TRAIN if name.endswith(".tra") else DEV
        rows: list[str] = []
        for line in data.decode("ascii", errors="replace").splitlines():
            t = line.strip()
            if len(t) == 32 and set(t) <= {"0", "1"}:
                rows.append(t)
            elif len(rows) == 32 and t.isdigit() and len(t) == 1:
                bitmap = np.array([[c == "1" for c in r] for r in rows], np.uint8) * 255
                samples.append(
                    Sample(
                        int(t), UNKNOWN_WRITER, split, f"{name}:{len(samples)}", image=bitmap, ink_high=True
                    )
                )
                rows = []
            elif rows:
                raise DataError(f"{name}: malformed bitmap near digit {len(samples)} ({t[:20]!r})")
    return samples


def parse_mfeat(files: dict[str, bytes]) -> list[Sample]:
    """2,000 lines of 240 grey levels 0-6 (15 x 16, ink high); lines 1-200 are 0s, 201-400 1s..."""
    name = "mfeat/mfeat-pix.txt"
    lines = [line for line in files[name].decode("ascii", errors="replace").splitlines() if line.strip()]
    if len(lines) != 2000:
        raise DataError(f"{name}: malformed ({len(lines)} lines, 2000 expected)")
    samples = []
    for i, line in enumerate(lines):
        try:
            values = np.array([int(v) for v in line.split()], np.int32)
        except ValueError as exc:
            raise DataError(f"{name}: malformed line {i + 1} ({exc})") from exc
        if values.size != 240 or values.min() < 0 or values.max() > 6:
            raise DataError(f"{name}: malformed line {i + 1} (240 values 0-6 expected)")
        image = np.round(values.reshape(16, 15) * (255 / 6)).astype(np.uint8)
        samples.append(Sample(i // 200, UNKNOWN_WRITER, TRAIN, f"{name}:{i + 1}", image=image, ink_high=True))
    return samples


def parse_semeion(files: dict[str, bytes]) -> list[Sample]:
    """One line per digit: 256 values (16 x 16, ink 1) then a one-hot label of 10."""
    name = "semeion/semeion.data"
    samples = []
    for i, line in enumerate(files[name].decode("ascii", errors="replace").splitlines()):
        values = line.split()
        if not values:
            continue
        try:
            numbers = np.array([float(v) for v in values], np.float64)
        except ValueError as exc:
            raise DataError(f"{name}: malformed line {i + 1} ({exc})") from exc
        if numbers.size != 266:
            raise DataError(f"{name}: malformed line {i + 1} ({numbers.size} values, 266 expected)")
        image = (numbers[:256].reshape(16, 16) * 255).astype(np.uint8)
        label = int(np.argmax(numbers[256:]))
        samples.append(Sample(label, UNKNOWN_WRITER, DEV, f"{name}:{i + 1}", image=image, ink_high=True))
    return samples


def parse_scans(files: dict[str, bytes]) -> list[Sample]:
    """`<writer>_<country><age><sex>/<digit>/<n>.png`, decoded as the Upload page decodes them."""
    from digit_app.imageio import ImageError, decode_image

    samples = []
    for name, data in sorted(files.items()):
        _, folder, digit, _ = name.split("/", 3)
        writer = folder.split("_")[0]
        try:
            image = decode_image(data, name)
        except ImageError as exc:
            raise DataError(f"{name}: not a readable image ({exc})") from exc
        split = TRAIN if writer in SCANS_TRAIN_WRITERS else DEV
        samples.append(Sample(int(digit), f"scans/{writer}", split, name, image=image))
    return samples


# --- the sets ------------------------------------------------------------------------------------


def _scans_manifest() -> dict[str, str]:
    lines = (MANIFESTS / "scans.sha256").read_text().splitlines()
    pairs = (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    return {f"scans/{path}": digest for digest, path in pairs}


def _scans_spec() -> SetSpec:
    files = _scans_manifest()
    split = {f: TRAIN if f.split("/")[1][:4] in SCANS_TRAIN_WRITERS else DEV for f in files}
    urls = {f: (f"{SCANS_REPO}/{f.split('/', 1)[1]}",) for f, s in split.items() if s == TRAIN}
    return SetSpec(
        "scans",
        "image",
        files,
        split,
        urls,
        parse_scans,
        "https://github.com/kensanata/numbers",
        "CC0",
        'Alex Schroeder and BSI AG, "numbers": a collection of handwritten digits (CC0).',
    )


SPECS: dict[str, Callable[[], SetSpec]] = {
    "pendigits": lambda: SetSpec(
        "pendigits",
        "pen",
        {
            "pendigits/pendigits-train.json": "3c38218bfa71b07ac364194542eedfc2d5aaa2a48544ebb5b9e47507f2510d46"
        },
        {"pendigits/pendigits-train.json": "mixed"},
        {},
        parse_pendigits,
        "the project's conversion of UCI pendigits (https://archive.ics.uci.edu/dataset/81), writers 1-30"
        " with their splits; ask the maintainers for pendigits-train.json",
        "CC BY 4.0",
        "F. Alimoglu, E. Alpaydin, Pen-Based Recognition of Handwritten Digits, UCI Machine Learning"
        " Repository, 1996, doi:10.24432/C5MG6K.",
    ),
    "unipen": lambda: SetSpec(
        "unipen",
        "pen",
        {"unipen/unipen-1a.json": "45dc791bd40bceb00fbec38c605eb4ba0907762a4e2286f7c6a4b5d78f7dcdef"},
        {"unipen/unipen-1a.json": "mixed"},
        {},
        parse_unipen,
        "the project's conversion of UNIPEN train_r01_v07 category 1a (doi:10.5281/zenodo.1195803),"
        " with writer ids and splits; ask the maintainers for unipen-1a.json",
        "CC BY 4.0",
        "I. Guyon, L. Schomaker, R. Plamondon, M. Liberman, S. Janet, UNIPEN project of on-line data"
        " exchange and recognizer benchmarks, ICPR 1994; International Unipen Foundation,"
        " train_r01_v07, doi:10.5281/zenodo.1195803.",
    ),
    "scans": _scans_spec,
    "optdigits": lambda: SetSpec(
        "optdigits",
        "image",
        {
            "optdigits/optdigits-orig.tra": "a4eff709680076cae40420343de292b5960fc2b0da439b8a57c3d14124113bda",
            "optdigits/optdigits-orig.windep": "c09ab8735d588fdf980724f10a5072c0b757037dc80b448b2f6a10392751c9d6",
        },
        {"optdigits/optdigits-orig.tra": TRAIN, "optdigits/optdigits-orig.windep": DEV},
        {"optdigits/optdigits-orig.tra": (f"{UCI}/optdigits/optdigits-orig.tra.Z",)},
        parse_optdigits,
        "https://archive.ics.uci.edu/dataset/80",
        "CC BY 4.0",
        "E. Alpaydin, C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine Learning"
        " Repository, 1998, doi:10.24432/C50P49.",
    ),
    "mfeat": lambda: SetSpec(
        "mfeat",
        "image",
        {"mfeat/mfeat-pix.txt": "18aba069947f58f64d4cd7095593149bad1e3b8a6288d9bb2e8461d79f5f2123"},
        {"mfeat/mfeat-pix.txt": TRAIN},
        {"mfeat/mfeat-pix.txt": (f"{UCI}/mfeat/mfeat-pix",)},
        parse_mfeat,
        "https://archive.ics.uci.edu/dataset/72",
        "CC BY 4.0",
        "R. Duin, Multiple Features, UCI Machine Learning Repository, 1998, doi:10.24432/C5HC70.",
    ),
    "semeion": lambda: SetSpec(
        "semeion",
        "image",
        {"semeion/semeion.data": "0a0db68edc935e157425afd5f0dd927256b473a2e82262fd442cfde4c6e42c76"},
        {"semeion/semeion.data": DEV},
        {},
        parse_semeion,
        "https://archive.ics.uci.edu/dataset/178",
        "CC BY 4.0",
        "Semeion Research Center of Sciences of Communication, Semeion Handwritten Digit, UCI Machine"
        " Learning Repository, 2008, doi:10.24432/C5SC8V.",
    ),
}
TRAIN_SETS = ("pendigits", "unipen", "scans", "optdigits", "mfeat")  # every set with a train split


def spec(name: str) -> SetSpec:
    if name not in SPECS:
        raise ValueError(f"unknown handwriting set {name!r} (known: {', '.join(SPECS)})")
    return SPECS[name]()


# --- finding, fetching and verifying the files ------------------------------------------------


def _decoded(payload: bytes, url: str) -> bytes:
    """A public file as the project reads it: .Z archives (UCI's optdigits) unpacked."""
    return unlzw(payload, url) if url.endswith(".Z") else payload


def _read_verified(path: Path, rel: str, expected: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from exc
    digest = sha256(data)
    if digest != expected:
        raise DataError(f"{path}: wrong SHA-256 {digest[:12]}… for {rel} (expected {expected[:12]}…)")
    return data


def _fetch_missing(s: SetSpec, missing: list[str], cache: Path, progress: bool) -> None:
    """Download the missing files of a set (only train files have public homes)."""
    bar = None
    if progress and len(missing) > 3:
        from tqdm import tqdm

        bar = tqdm(total=len(missing), unit="file", desc=f"downloading {s.name}", leave=False)
    for rel in missing:

        def check(payload: bytes, url: str, rel: str = rel) -> bytes:
            data = _decoded(payload, url)
            if sha256(data) != s.files[rel]:
                raise DataError(f"wrong SHA-256 {sha256(data)[:12]}… (expected {s.files[rel][:12]}…)")
            return data

        fetch_file(rel, s.urls[rel], cache / rel, check, progress=progress and bar is None)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()


def locate(
    name: str,
    splits: Sequence[str] = (TRAIN,),
    root: Path | None = None,
    cache: Path | None = None,
    progress: bool = True,
    download: bool = True,
) -> dict[str, Path]:
    """The set's files for these splits: in `root` ($HANDWRITING_DIR), else the cache, else
    (with `download`) downloaded into the cache where the set has a public home. Raises naming
    what is missing."""
    s = spec(name)
    settings = get_settings()
    root = root if root is not None else settings.handwriting_dir
    cache = cache if cache is not None else settings.cache_dir / "handwriting"
    found: dict[str, Path] = {}
    missing = []
    for rel in s.needed(splits):
        places = ([root / rel] if root is not None else []) + [cache / rel]
        path = next((p for p in places if p.is_file()), None)
        if path is not None:
            found[rel] = path
        elif rel in s.urls and download:
            missing.append(rel)
        else:
            where = ", ".join(str(p.parent) for p in places)
            raise DataError(f"{name}: {rel} is missing (looked in {where}); it is {s.home}")
    if missing:
        _fetch_missing(s, missing, cache, progress)
        found.update({rel: cache / rel for rel in missing})
    return found


def load_set(
    name: str,
    splits: Sequence[str] = (TRAIN,),
    root: Path | None = None,
    cache: Path | None = None,
    progress: bool = True,
    download: bool = True,
) -> HandwritingSet:
    """The verified samples of `splits` of one set."""
    s = spec(name)
    paths = locate(name, splits, root, cache, progress, download)
    raw = {rel: _read_verified(path, rel, s.files[rel]) for rel, path in paths.items()}
    samples = [x for x in s.parse(raw) if x.split in splits]
    for x in samples:
        if not 0 <= x.label <= 9 or x.split not in (TRAIN, DEV):
            raise DataError(f"{x.ident}: label {x.label!r} or split {x.split!r} is not valid")
    folders = sorted({str(p.parents[len(Path(rel).parts) - 1]) for rel, p in paths.items()})
    return HandwritingSet(name, samples, {rel: s.files[rel] for rel in paths}, ", ".join(folders))


def load_sets(
    names: Iterable[str],
    root: Path | None = None,
    allow_missing: bool = False,
    progress: bool = True,
    download: bool = True,
) -> tuple[dict[str, HandwritingSet], dict[str, str]]:
    """The train splits of several sets; with `allow_missing`, the ones that cannot be had are
    left out and returned with the reason instead of stopping the run."""
    loaded, missing = {}, {}
    for name in names:
        try:
            loaded[name] = load_set(name, (TRAIN,), root, progress=progress, download=download)
        except DataError as exc:
            if not allow_missing:
                raise
            missing[name] = str(exc)
    return loaded, missing
