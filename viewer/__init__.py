"""Rich rendering of traces: the timing tree (``show``), the run list (``ls``), the live view
(``replay``, and ``tail``), and the exports. It reads through :mod:`exporters.reading`."""
