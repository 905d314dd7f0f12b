"""``sessrec prepare``: raw public data sets (REES46, YOOCHOOSE, G1, ADRESSA) or any event log → time windows.

``pipeline.py`` holds the steps every data set shares (sessions, repeats, lengths, ids, windows,
splits, schema, statistics), ``raw.py`` the reading and checking of raw files, ``features.py`` the
engineered features; one module per data set says how its raw files are read and which features
it writes; ``cli.py`` holds the flags.
"""

DEFAULT_SESSION_GAP_MS = 30 * 60_000  # --session-gap: the paper's 30 minutes of inactivity
