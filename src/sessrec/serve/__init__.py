"""``sessrec serve``: a trained model behind HTTP/JSON (FastAPI on uvicorn).

``models.py`` loads a checkpoint into a scoring backend (PyTorch eager, TorchScript, ONNX Runtime)
and swaps in the newer ``checkpoint-last`` of a run as it appears; ``batcher.py`` gathers
concurrent requests into one forward pass; ``app.py`` holds the HTTP routes, the request checks
and the error answers.
"""
