"""Non-transformer baselines under the same protocol, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

from sessrec.baselines.pop import MostPopular

BASELINES: dict[str, Callable] = {"pop": MostPopular}
