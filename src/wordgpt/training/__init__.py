"""Token files to a trained model in a run folder: the ``train`` stage.

:mod:`.train` is the procedure, top to bottom (set-up, the loop, finish); :mod:`.plan` makes
every check first and gives a frozen plan, :mod:`.setup` builds the model and its trainer,
:mod:`.writer` writes what the run keeps, :mod:`.budget` owns its time; :mod:`.trainer` makes
one optimizer step and holds the state a resume needs. Beside them: :mod:`.batches` (batches
as a function of seed, step and rank), :mod:`.optim` (AdamW/Muon, the schedule, EMA),
:mod:`.distributed` (DDP collectives), :mod:`.speed` (the recipe for a budget on this
machine), :mod:`.holdout` (the slice a run with an n-gram partner keeps from its GPT),
:mod:`.init_from` (another run's weights) and :mod:`.embedding_init` (word vectors for the
token embedding). Nothing here imports the stage that uses a run: the whole ``train``
command, with what follows the model, is that stage's ``train_run`` module.
"""
