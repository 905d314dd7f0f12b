import sys

from sessrec.progress import bar_disabled


def test_bars_are_off_when_quiet_and_in_log_files_but_on_in_a_notebook(monkeypatch):
    """In a Jupyter kernel stderr is no terminal, yet bars show there (tqdm's None turned them off: QA helper-68)."""
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert bar_disabled(True) is True and bar_disabled(False) is None  # None: tqdm draws on a terminal only
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert bar_disabled(True) is True and bar_disabled(False) is False
