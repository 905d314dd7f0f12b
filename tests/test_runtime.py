import logging

import pytest
import torch

from sessrec import errors, runtime
from sessrec.errors import SessrecError
from sessrec.runtime import private_op, resolve_device


def test_private_op_falls_back_once_and_remembers(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_unusable", set())
    monkeypatch.setattr(errors, "_warned", set())
    calls = []

    def broken(x):
        calls.append(x)
        raise RuntimeError("not implemented for 'Long'\nsecond line")

    with caplog.at_level(logging.WARNING):
        assert private_op("torch._thing", lambda: broken, lambda x: x + 1, 1) == 2
        assert private_op("torch._thing", lambda: broken, lambda x: x + 1, 2) == 3
    assert calls == [1]  # not tried again after it failed
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "torch._thing is not usable" in warnings[0] and "\n" not in warnings[0]
    # missing: the resolver raises
    assert private_op("torch._gone", lambda: torch._no_such_op, lambda x: -x, 4) == -4
    assert private_op("torch._fine", lambda: torch.neg, lambda x: 0, torch.tensor(4)).item() == -4


def test_private_op_does_not_hide_running_out_of_memory(monkeypatch):
    monkeypatch.setattr(runtime, "_unusable", set())

    def oom():
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        private_op("torch._big", lambda: oom, lambda: None)
    assert runtime._unusable == set()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(SessrecError, match="CUDA is not available"):
            resolve_device("cuda:0")
