"""The run folder, the contract between training and its uses: :mod:`.folder` (guard and
lock), :mod:`.checkpoint` (atomic save, safe load), :mod:`.metrics` (``metrics.csv``),
:mod:`.plots` (``loss.png``) and :mod:`.members` (further members of an ensemble, the n-gram
partner's file)."""
