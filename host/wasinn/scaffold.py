"""`wasinn new NAME`: a working guest folder to start from (main.py, README.md, pyproject.toml).

The guest runs as soon as it is built (it greets without a model), and with a model file it
runs one inference and prints the top 5 as probabilities — the whole loop in one file. The
encoding is chosen from the model's file suffix, so the guest also runs on Wasmtime's and
WasmEdge's wasi-nn (no autodetect needed).
"""

from __future__ import annotations

import argparse
import keyword
import re
from pathlib import Path

from .errors import HostError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

MAIN = '''\
"""{name}: a WASI-NN guest in Python (made by `wasinn new`).

    wasinn build {name} -o {name}.wasm
    wasinn run {name}.wasm world                                # hello, world
    wasinn run --dir .:. {name}.wasm model.onnx 1,3,224,224     # top-5 for an all-ones input
    wasinn run --native {name} model.onnx 1,3,224,224           # the same under this Python
"""

import sys
from array import array

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType
from wasi_nn.results import softmax, top_k

ENCODINGS = {{".onnx": GraphEncoding.ONNX, ".xml": GraphEncoding.OPENVINO,
              ".pt": GraphEncoding.PYTORCH, ".tflite": GraphEncoding.TENSORFLOWLITE}}


def classify(model: str, dims: list[int]) -> None:
    suffix = model[model.rfind("."):].lower()
    if suffix not in ENCODINGS:
        sys.exit(f"{{model}}: expected a .onnx, .xml (+ .bin), .pt or .tflite model")
    files = [model, model[:-4] + ".bin"] if suffix == ".xml" else [model]
    count = 1
    for size in dims:
        count *= size
    builder = GraphBuilder(ENCODINGS[suffix], ExecutionTarget.CPU)
    with builder.build_from_files(files) as graph:
        with graph.init_execution_context() as context:
            context.set_input(0, TensorType.F32, dims, array("f", [1.0]) * count)
            context.compute()
            scores = context.get_output_array(0)
    for index, probability in top_k(softmax(scores), 5):
        print(f"class {{index}}: {{probability:.4f}}")


def main(argv: list[str]) -> None:
    if len(argv) == 3:
        classify(argv[1], [int(size) for size in argv[2].split(",")])
    elif len(argv) <= 2:
        print(f"hello, {{argv[1] if len(argv) == 2 else 'world'}}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
'''

README = '''\
# {name}

A WASI-NN guest written in Python, made by `wasinn new`.

```
wasinn build {name} -o {name}.wasm                              # one core wasm module
wasinn run {name}.wasm world                                    # prints: hello, world
wasinn run --dir .:. {name}.wasm model.onnx 1,3,224,224         # top-5 of an all-ones input
wasinn run --native {name} model.onnx 1,3,224,224               # debug under plain Python
wasmtime run -S nn --dir . {name}.wasm model.onnx 1,3,224,224   # elsewhere: build with --portable
```

`main.py` is the entry. Other `.py` files and packages in this folder are bundled too; pure-
Python dependencies listed in `pyproject.toml` come from the Python running `wasinn build`,
or from a `vendor/` folder here. `[tool.wasinn] exclude` keeps files (training scripts, …)
out of the module.
'''

PYPROJECT = '''\
[project]
name = "{name}"
version = "0.1.0"
# Pure-Python packages the guest imports (bundled from the build environment or ./vendor).
dependencies = []

[tool.wasinn]
entry = "main"
# Files or folders (globs, relative to this folder) never bundled, e.g. ["train.py", "notebooks"].
exclude = []
'''


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "new", help="create a working guest folder (main.py, README.md, pyproject.toml)",
        description="Create NAME/ with a guest that greets, or classifies with a model file.")
    parser.add_argument("name", metavar="NAME", help="the folder to create (also the guest's name)")
    parser.set_defaults(handler=run)


def run(options: argparse.Namespace) -> int:
    target = Path(options.name)
    name = target.name
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise HostError(f"bad name {name!r}: use letters, digits, '_' or '-', starting with a letter")
    if target.exists():
        raise HostError(f"{target} already exists; pick another name or remove it")
    if not target.parent.is_dir():
        raise HostError(f"the folder {target.parent} does not exist")
    try:
        target.mkdir()
        (target / "main.py").write_text(MAIN.format(name=name))
        (target / "README.md").write_text(README.format(name=name))
        (target / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    except OSError as error:
        raise HostError(f"cannot create {target}: {error.strerror or error}") from None
    print(f"created {target}/ (main.py, README.md, pyproject.toml); next:\n"
          f"  wasinn build {target} -o {name}.wasm && wasinn run {name}.wasm world")
    return 0
