"""The panel's five steps, in tab order (the dock's tabs; the run controller shows a step by index)."""

AREA, GRID, BACKENDS, PROCESS, RUN = range(5)
