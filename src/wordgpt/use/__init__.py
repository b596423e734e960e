"""Using a trained run: :mod:`.loaded` (``load()``, :class:`~.loaded.Model`), :mod:`.sample`
(text), :mod:`.evaluate` (whole-split loss and bits per character), :mod:`.export` (Hugging
Face) and :mod:`.serve` (the local web page)."""
