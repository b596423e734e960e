"""Token files to a run folder: the ``train`` stage.

:mod:`.plan` (every check before anything is written) -> :mod:`.start` (the lock, the model,
the dtype, the trainer) -> :mod:`.loop` (``train()``: the loop, evaluations, progress,
signals) with :mod:`.trainer` (one step, the loss estimate, state), :mod:`.batches`,
:mod:`.optim` (AdamW/Muon, schedules, EMA), :mod:`.records` (what each evaluation keeps),
:mod:`.device` (device, dtype probe, peak FLOP/s), :mod:`.distributed` (DDP collectives)
and :mod:`.embedding_init` (word vectors for the token embedding).
"""
