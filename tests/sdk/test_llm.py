"""`wasi_nn.llm` helpers that need no model: chat templates, stop markers, metadata, options.
(Generation, streaming and embeddings run on the tiny GGUF in tests/examples/test_llm.py,
in wasm and natively.)"""

from __future__ import annotations

import pytest

from wasi_nn.llm import Metadata, _options_json, chat_prompt, strip_stop

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a colour."},
]


def test_llama3_template():
    assert chat_prompt(CONVERSATION, "llama3") == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_chatml_template():
    assert chat_prompt(CONVERSATION, "chatml") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_llama2_template():
    assert chat_prompt(CONVERSATION, "llama2") == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s>"
        "<s>[INST] Name a colour. [/INST]")


def test_unknown_template_names_the_known_ones():
    with pytest.raises(ValueError, match="llama2, llama3, chatml"):
        chat_prompt(CONVERSATION, "vicuna")


def test_strip_stop_and_metadata_and_options():
    assert strip_stop("done.</s>") == "done."
    assert strip_stop("done.<|eot_id|>") == "done."
    assert strip_stop("</s> in the middle") == "</s> in the middle"
    meta = Metadata.from_json(b'{"input_tokens": 9, "output_tokens": 26, '
                              b'"llama_build_number": 0, "llama_commit": "0c1e57098"}')
    assert (meta.input_tokens, meta.output_tokens, meta.llama_commit) == (9, 26, "0c1e57098")
    assert _options_json({"n_predict": 5, "reverse_prompt": "User:"}) == \
        '{"n-predict": 5, "reverse-prompt": "User:"}'
