"""The run folder, the contract between training and its uses: :mod:`.folder` (guard and
lock), :mod:`.checkpoint` (atomic save, safe load), :mod:`.metrics` (``metrics.csv``) and
:mod:`.plots` (``loss.png``)."""
