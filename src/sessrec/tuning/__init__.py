"""Hyper-parameter tuning as the paper did it: search spaces (:mod:`.space`) and studies (:mod:`.study`)."""
