"""results.py - where a run's figures and notes go.

`record()` appends one line per figure to results.tsv in the run's temp dir:
server<TAB>metric<TAB>round<TAB>value<TAB>suspect, the input of table.py.
`note()` keeps one line for the report's "Notes" (errors, non-2xx
responses, crashes, closed idle connections, contended measurements) and
logs it to stderr.
"""

import os

from procs import log


class Results:
    def __init__(self, tmp):
        self.path = os.path.join(tmp, "results.tsv")
        self.notes = []
        open(self.path, "w").close()

    def record(self, server, metric, rnd, value, suspect):
        """value is already formatted (e.g. "%.1f" % x); suspect is True
        when other processes competed for the CPUs during the measurement."""
        with open(self.path, "a") as f:
            f.write("%s\t%s\t%s\t%s\t%d\n" % (server, metric, rnd, value, 1 if suspect else 0))

    def note(self, text):
        log("note: " + text)
        self.notes.append(text)
