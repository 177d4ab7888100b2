"""Training side of moext: datasets, protocols, loops, evaluation and reports."""
