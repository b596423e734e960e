"""A run at work: :mod:`.train_run` (the whole ``train`` command: the model, further members,
the n-gram partner, the report), :mod:`.loaded` (``load()``, :class:`~.loaded.Model`),
:mod:`.generate` (generation as text: streaming, copied spans), :mod:`.evaluate` (whole-split
loss and bits per character), :mod:`.copies` (does it write or copy), :mod:`.report` (a page
per run), :mod:`.words` (its embeddings), :mod:`.export` (Hugging Face) and :mod:`.serve` (the
local web page)."""
