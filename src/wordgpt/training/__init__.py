"""Token files to a run folder: the ``train`` stage.

:mod:`.train` is the procedure, top to bottom (set-up, the loop, finish); :mod:`.trainer`
makes one optimizer step and holds the state a resume needs. Beside them: :mod:`.batches`
(batches as a function of seed, step and rank), :mod:`.optim` (AdamW/Muon, the schedule,
EMA), :mod:`.distributed` (DDP collectives), :mod:`.speed` (the recipe for a budget on this
machine), :mod:`.init_from` (another run's weights) and :mod:`.embedding_init` (word vectors
for the token embedding).
"""
