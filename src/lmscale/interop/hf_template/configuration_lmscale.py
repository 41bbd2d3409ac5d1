"""Configuration of an lmscale ladder model exported for Hugging Face transformers.

Written by ``lmscale export``; loaded with ``trust_remote_code=True``. Needs only torch and
transformers (lmscale itself is not imported)."""

from transformers import PretrainedConfig


class LmscaleConfig(PretrainedConfig):
    model_type = "lmscale"

    def __init__(
        self,
        vocab_size=50432,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=4,
        intermediate_size=1536,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        norm_eps=1e-5,
        n_params=None,
        qk_norm_gains=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.norm_eps = norm_eps
        # N as lmscale counts it (embeddings included), for the record
        self.n_params = n_params
        # learnable gains on the qk-LayerNorm (lmscale's open_lm recipe)
        self.qk_norm_gains = qk_norm_gains
        kwargs.setdefault("tie_word_embeddings", False)
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)
