"""Using a trained run: :mod:`.loaded` (``load()``, :class:`~.loaded.Model`),
:mod:`.generate` (all generation: the KV-cache loop, sampling, streaming, copied spans),
:mod:`.evaluate` (whole-split loss and bits per character), :mod:`.copies` (does it write or
copy), :mod:`.report` (a page per run), :mod:`.words` (its embeddings), :mod:`.export`
(Hugging Face) and :mod:`.serve` (the local web page)."""
