"""The GPT (:mod:`.gpt`: attention, block, model, KV cache, FLOPs) and where it runs
(:mod:`.device`: the device, the autocast dtype measured on this machine, the peak FLOP/s,
the memory a model needs). The model knows nothing about files, tokenizers or training; the
original notebook's plain version of it lives with the tests (``tests/reference_model.py``).
"""
