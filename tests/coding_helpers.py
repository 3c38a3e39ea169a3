"""Helpers shared by the models' coder tests (tests/ is on sys.path under pytest's default import mode)."""


def forbid_compressai(monkeypatch, model):
    """Make every CompressAI coding call raise (the per-call classes, and the compress/decompress of
    the model's CompressAI entropy models): the fast path must not use them."""
    import compressai.ans
    from compressai.entropy_models import EntropyModel

    def refuse(*args, **kwargs):
        raise AssertionError("CompressAI coder used on the fast path")

    for name in ("BufferedRansEncoder", "RansEncoder", "RansDecoder"):
        monkeypatch.setattr(compressai.ans, name, refuse)
    for module in model.modules():
        if isinstance(module, EntropyModel):
            monkeypatch.setattr(module, "compress", refuse)
            monkeypatch.setattr(module, "decompress", refuse)
