"""llama_chat: talk to a GGUF language model (Python twin of WasmEdge's wasmedge-ggml/llama
and llama-stream).

    llama_chat.wasm MODEL_NAME [PROMPT] [--stream]

With PROMPT: prints the prompt, the model's response and token counts, then exits. Without:
a chat loop on stdin (a Llama-2 `[INST]` conversation, as the Rust example builds it). With
--stream the response is printed token by token as the host makes it. Options come from the
environment as in the Rust example: enable_log, n_gpu_layers, ctx_size, n_predict, temp, seed,
reverse_prompt (e.g. `wasinn run --env temp=0 ...`).
"""

import os
import sys

from wasi_nn import Errno, WasiNnError
from wasi_nn.llm import Llm, strip_stop

SYSTEM_PROMPT = ("You are a helpful, respectful and honest assistant. Always answer as short "
                 "as possible, while being safe.")
OPTION_TYPES = {"enable_log": bool, "n_gpu_layers": int, "ctx_size": int, "n_predict": int,
                "temp": float, "seed": int, "reverse_prompt": str}


def options_from_environment() -> dict:
    options = {}
    for name, kind in OPTION_TYPES.items():
        value = os.environ.get(name)
        if value is None:
            continue
        if kind is bool:
            options[name.replace("_", "-")] = value.lower() in ("1", "true", "yes")
        else:
            options[name.replace("_", "-")] = kind(value)
    return options


def respond(llm: Llm, prompt: str, stream: bool) -> str:
    """The response, printed whole or piece by piece; a full context is reported, not fatal."""
    if not stream:
        text = llm.generate(prompt, keep_stop=True)
        print(text.strip())
    else:
        pieces = []
        for piece in llm.stream(prompt):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print()
        text = "".join(pieces)
    if llm.finish_reason == "context_full":
        print("\n[INFO] Context full, we'll reset the context and continue.")
    return text


def one_shot(llm: Llm, prompt: str, stream: bool) -> None:
    print(f"Prompt:\n{prompt}")
    print("Response:")
    llm.set_prompt(prompt)
    meta = llm.metadata()
    print(f"[INFO] llama_commit: \"{meta.llama_commit}\"")
    print(f"[INFO] llama_build_number: {meta.llama_build_number}")
    print(f"[INFO] Number of input tokens: {meta.input_tokens}")
    respond(llm, prompt, stream)
    meta = llm.stream_metadata() if stream else llm.metadata()
    print(f"[INFO] Number of input tokens: {meta.input_tokens}")
    print(f"[INFO] Number of output tokens: {meta.output_tokens}")


def chat(llm: Llm, stream: bool) -> None:
    saved = ""
    while True:
        print("USER:")
        line = sys.stdin.readline()
        if not line:
            return
        question = line.strip()
        if not saved:
            saved = f"[INST] <<SYS>> {SYSTEM_PROMPT} <</SYS>> {question} [/INST]"
        else:
            saved = f"{saved} [INST] {question} [/INST]"
        print("ASSISTANT:")
        try:
            answer = respond(llm, saved, stream)
        except WasiNnError as error:
            if error.errno != Errno.PROMPT_TOO_LONG:
                raise
            print("\n[INFO] Prompt too long, we'll reset the context and continue.")
            saved = ""
            continue
        saved = "" if llm.finish_reason == "context_full" else f"{saved} {strip_stop(answer).strip()}"


def main(argv: list) -> int:
    stream = "--stream" in argv
    args = [a for a in argv[1:] if a != "--stream"]
    if not args:
        print("usage: llama_chat.wasm MODEL_NAME [PROMPT] [--stream]", file=sys.stderr)
        return 2
    try:
        with Llm(args[0], options_from_environment()) as llm:
            if len(args) >= 2:
                one_shot(llm, args[1], stream)
            else:
                chat(llm, stream)
    except WasiNnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
