"""LLM track: offline model and corpus, harvesting, training from shards, downstream evaluation."""
