"""Hugging Face transformers models built from their config, no download: factories for
`--model coordinator.model.hf_models:<factory> --inputs coordinator.model.hf_models:token_ids`.

Seeded random weights (`--weights random`), or a state dict of the same config (`--weights
FILE`). The configs are small, for tests and a first try; a model of its real size is a factory
of the user's own, the same few lines with its `*Config()` defaults. Needs `pip install
'e2e[transformers]'`. Outputs are the model's output dict flattened (`last_hidden_state`, and
`pooler_output` for BERT), compared elementwise.
"""
from typing import Any, Dict

SEQUENCE = 16  # tokens per input: a fixed sequence length (the batch axis stays dynamic)
VOCAB = 1000


def bert_encoder() -> Any:
    """A BERT-style encoder: 2 layers, hidden size 64, 4 heads."""
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=128, max_position_embeddings=128))


def gpt2_decoder() -> Any:
    """A GPT-2-style decoder: 2 layers, hidden size 64, 4 heads, no key/value cache."""
    from transformers import GPT2Config, GPT2Model

    return GPT2Model(GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                                bos_token_id=0, eos_token_id=0, use_cache=False))


def token_ids() -> Dict[str, Any]:
    """One sequence of seeded token ids, its last quarter padding (attention mask 0)."""
    import torch

    ids = torch.randint(1, VOCAB, (1, SEQUENCE), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, SEQUENCE, dtype=torch.int64)
    mask[:, SEQUENCE * 3 // 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}
