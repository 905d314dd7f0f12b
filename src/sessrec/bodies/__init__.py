"""Sequence-model bodies, looked up by name.

A body maps ``inputs_embeds [B, L, d_model]`` and a padding mask ``[B, L]`` (True = real item)
to hidden states ``[B, L, d_model]``. ``causal=True`` asks that position i sees only positions
<= i. Each body class says what it can do with ``supports_causal`` / ``supports_bidirectional``
(the objective checks it before training starts); with ``selects_outputs`` it also takes
``outputs`` (flat positions) and returns only their hidden states (see ``SessionModel.encode``);
with ``takes_packed`` it also takes ``packing`` (a grouped :class:`.packing.Packing` of the mask)
and then inputs as that packing's rows ``[T', d_model]`` (see ``SessionModel.embed_encode``).
Adding an architecture is one file with a builder registered here.

A body with ``use_timestamps()`` (HSTU) is asked once built whether it reads the interactions'
timestamps; when it says so, it also takes ``timestamps`` ``[B, L]`` (the schema's time column).

Names: ``xlnet``, ``gpt2``, ``bert``, ``albert``, ``electra``, ``transfoxl``, ``sasrec``, ``hstu``,
``gru``, ``lstm``, and ``hf:<ModelClass>`` for any ``transformers`` model class that accepts ``inputs_embeds``
(``hf:LlamaModel``, ``hf:MistralModel``, ...), configured through ``model_config``.
"""

# The architectures register themselves in the registry when imported.
from sessrec.bodies import bert, gpt2, hstu, rnn, sasrec, transfo_xl, xlnet  # noqa: F401
from sessrec.bodies.registry import (  # noqa: F401 (the package's names)
    BODIES,
    HF_PREFIX,
    BodyBuilder,
    BodyRegistry,
    build_body,
    check_attn_type,
    check_heads,
    model_options,
    register,
)
