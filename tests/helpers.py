"""Test helpers: where ``../shared`` is, and tiny random models (Llama and Gemma3 configs with a
saved tokenizer) for unit tests.

``build_tiny_model(folder, arch, kind)`` trains a small byte-level BPE tokenizer on a built-in
corpus (so nothing is downloaded), gives it a chat template (Llama-style) or Gemma turn tokens
(Gemma-style, no template, like the pretrained gemma3-270m), and saves a randomly initialised
causal LM or sequence-classification RM (with a trained-looking, saved score head) next to it.
Everything is seeded, so two builds are identical.
"""

from __future__ import annotations

from pathlib import Path

import torch

from analyses.inputs.prompts import paper_prompts

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""``../shared`` beside the checkout (CI clones next to a copy of it)."""

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = (
    "achievement ambition power success strength victory leadership competence confidence "
    "love friendship family kindness care trust community warmth compassion honesty loyalty "
    "peace joy hope freedom health money war death hate evil pain fear the a an of in is what "
    "one word thing ever world time best worst greatest good bad terrible most please answer only "
    "single user assistant model system you we our"
).split()


def _corpus() -> list[str]:
    lines = [p.text for p in paper_prompts()]
    lines += [" ".join(_WORDS[i : i + 7]) for i in range(0, len(_WORDS), 3)]
    lines += [w.capitalize() for w in _WORDS] + _WORDS
    return lines * 3


def build_tokenizer(folder: Path, arch: str):
    """A byte-level BPE tokenizer (vocab ~400) saved to ``folder``; returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if arch == "llama":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        bos, eos, pad, unk = "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>"
    else:
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        bos, eos, pad, unk = "<bos>", "<eos>", "<pad>", "<unk>"
    tk = Tokenizer(models.BPE(unk_token=unk))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(_corpus(), trainer)
    if arch == "gemma":  # like Gemma: BOS is prepended to plain text
        from tokenizers import processors

        tk.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tk.token_to_id(bos))]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk
    )
    if arch == "llama":
        tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return tok


def tiny_config(arch: str, vocab_size: int, n_layers: int = 4, d_model: int = 32):
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=d_model,
            intermediate_size=2 * d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=False,
        )
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"] * (n_layers // 2),
    )


def build_tiny_model(
    folder: Path, arch: str = "llama", kind: str = "lm", n_layers: int = 4, seed: int = 0
) -> Path:
    """Save a tiny random ``arch`` model (``lm`` or ``rm`` with a saved score head) to ``folder``."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, arch)
    config = tiny_config(arch, vocab_size=len(tok), n_layers=n_layers)
    config.pad_token_id = tok.pad_token_id
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.eos_token_id
    torch.manual_seed(seed)
    if kind == "rm":
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # larger weights than the default init, so outputs vary visibly
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    model.save_pretrained(folder)
    return folder


AGENCY = ("power", "success", "achievement", "victory", "strength", "leadership")
COMMUNION = ("love", "kindness", "friendship", "family", "care", "trust")
WORDS = AGENCY + COMMUNION


def word_categories(agency=AGENCY, communion=COMMUNION):
    """A ``response, category`` table of toy Agency and Communion words."""
    import pandas as pd

    rows = [(w, "Agency") for w in agency] + [(w, "Communion") for w in communion]
    return pd.DataFrame(rows, columns=["response", "category"])


WORD_CATEGORIES = word_categories()


def other_rm(root: Path, arch: str, seed: int = 1, n_layers: int = 4) -> str:
    """A tiny random RM in ``root`` (built once) with other weights than the session's."""
    folder = Path(root) / f"{arch}-rm-s{seed}-l{n_layers}"
    if not (folder / "config.json").exists():
        build_tiny_model(folder, arch=arch, kind="rm", n_layers=n_layers, seed=seed)
    return str(folder)


def refusal(result) -> str:
    """The one ``error:`` line of a refused CLI run (click ``Result``), after checking the rules
    for bad input: exit status 2, exactly one line starting with ``error:`` and it is the last,
    no traceback, no exception escaping."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return errors[0]


class LocalHttp:
    """An HTTP server on 127.0.0.1 (a free port) answering with ``handler`` while in the
    ``with``; ``base`` is its ``http://127.0.0.1:PORT`` root. Tests never reach the network."""

    def __init__(self, handler) -> None:
        import http.server
        import threading

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LocalHttp:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
