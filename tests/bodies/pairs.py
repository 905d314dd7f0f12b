"""The (architecture, objective) pairs: every supported one, and the ones the paper ran."""

TINY = {"d_model": 16, "n_layer": 1, "n_head": 2}

# Every registered architecture with every task it supports (test_bodies checks that the others are refused).
ALL_PAIRS = [
    ("xlnet", "clm"), ("xlnet", "mlm"), ("xlnet", "plm"), ("xlnet", "rtd"),
    ("gpt2", "clm"),
    ("transfoxl", "clm"), ("transfoxl", "mlm"), ("transfoxl", "rtd"),
    ("bert", "clm"), ("bert", "mlm"), ("bert", "rtd"),
    ("albert", "clm"), ("albert", "mlm"), ("albert", "rtd"),
    ("electra", "clm"), ("electra", "mlm"), ("electra", "rtd"),
    ("gru", "clm"), ("lstm", "clm"),
    ("sasrec", "clm"), ("hstu", "clm"),
    ("hf:LlamaModel", "clm"), ("hf:LlamaModel", "mlm"), ("hf:LlamaModel", "rtd"),
]

# Table 2 of the paper: GPT-2, Transformer-XL, XLNet CLM/MLM/PLM/RTD, BERT (= ALBERT without sharing) and ALBERT MLM, ELECTRA RTD, GRU.
PAPER_PAIRS = [
    ("gpt2", "clm"), ("transfoxl", "clm"), ("xlnet", "clm"), ("xlnet", "mlm"), ("xlnet", "plm"), ("xlnet", "rtd"),
    ("bert", "mlm"), ("albert", "mlm"), ("electra", "rtd"), ("gru", "clm"),
]
