"""The GPT (:mod:`.gpt`: attention, block, model, KV cache, FLOPs) and the mission notebook's
plain version of it (:mod:`.reference`), which tests and benchmarks compare it with. The
model knows nothing about files, tokenizers or devices beyond its parameters."""
