"""Text to token files: the ``prepare`` stage. No torch is imported here.

:mod:`.sources` (named data sets, downloads, files, decoding) -> :mod:`.cleaning` (the
notebook's cleaning as a stream) and :mod:`.wikipedia` (dumps) -> :mod:`.clean_pass` (pass 1:
clean text and the split) -> :mod:`.token_pass` (pass 2: tokens in worker processes, through
:mod:`.parallel`) with :mod:`.tokenizer` -> :mod:`.tokenfiles` (the data folder, read back).
:mod:`.build` ties the passes together; :mod:`.copy_index` finds spans of token ids in the
training text. The tests compare the stream with a plain in-memory path
(``tests/reference_corpus.py``).
"""
