"""Word vectors on the side of the pipeline: :mod:`.word2vec` (training on a prepared
corpus), :mod:`.files` (reading and writing vector files), :mod:`.queries` (nearest words,
analogies), :mod:`.quality` (intrinsic benchmarks), :mod:`.tsne` (maps), :mod:`.align`
(vectors mapped onto a vocabulary). No torch is imported here.
"""
