"""Every model: the GPT (:mod:`.gpt`: attention, block, model, KV cache, FLOPs), the n-gram
model (:mod:`.ngram`) and its mixture with the GPT (:mod:`.mixture`), the ensemble of GPTs
(:mod:`.ensemble`), the sampling core every writer of text calls (:mod:`.sampling`), and where
they run (:mod:`.device`: the device, the autocast dtype measured on this machine, the peak
FLOP/s, the memory a model needs). Models know nothing about files, tokenizers or training;
the original notebook's plain GPT lives with the tests (``tests/reference_model.py``).
"""
