"""resources/corpus/manifest.json: documents, tokens (SmolLM2 tokenizer) and licence per source."""
import json
from pathlib import Path

from aenbench.jobs import setup_job

setup_job(snakemake, torch=True)  # noqa: F821

from transformers import AutoTokenizer  # noqa: E402

from aenbench.llm.resources import write_corpus_manifest  # noqa: E402

smk = snakemake  # noqa: F821
tok = AutoTokenizer.from_pretrained(smk.params.hf_dir)
entries, counts = [], {}
for entry_path in smk.input.entries:
    entry = json.loads(Path(entry_path).read_text())
    jsonl = Path(entry_path).with_name(f"{entry['source']}.jsonl")
    texts = [json.loads(line)["text"] for line in jsonl.read_text().splitlines() if line.strip()]
    counts[entry["source"]] = sum(len(ids) for ids in tok(texts, add_special_tokens=False).input_ids)
    entries.append(entry)
    print(f"{entry['source']}: {entry['documents']} documents, {counts[entry['source']]} tokens, {entry['licence']}")
write_corpus_manifest(entries, counts, smk.output.manifest)
