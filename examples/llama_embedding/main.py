"""llama_embedding: an embedding for each line of a text file, from a GGUF model (Python twin
of WasmEdge's wasmedge-ggml/embedding).

    llama_embedding.wasm MODEL_NAME FILE

Prints, per non-empty line, its number, the vector's size and first values, and its cosine
similarity to the first line (the vectors are L2-normalised, so that is a dot product).
"""

import sys

from wasi_nn import WasiNnError
from wasi_nn.llm import Llm


def main(argv: list) -> int:
    if len(argv) != 3:
        print("usage: llama_embedding.wasm MODEL_NAME FILE", file=sys.stderr)
        return 2
    name, path = argv[1], argv[2]
    with open(path, encoding="utf-8") as file:
        lines = [line.strip() for line in file if line.strip()]
    try:
        with Llm(name, {"embedding": True}) as llm:
            first = None
            for number, line in enumerate(lines, 1):
                vector = llm.embed(line)
                first = first or vector
                similarity = sum(a * b for a, b in zip(first, vector))
                head = ", ".join(f"{v:.4f}" for v in vector[:3])
                print(f"line {number}: {len(vector)} values [{head}, ...] "
                      f"similarity to line 1: {similarity:.4f}")
    except WasiNnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
