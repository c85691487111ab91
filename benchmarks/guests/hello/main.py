"""The smallest guest: one line, for timing a built module's start-up to its first output.

It imports the SDK as every real guest does, so the figure includes what a real guest pays
before it can print anything.
"""

import wasi_nn  # noqa: F401  (imported for its start-up cost)

print("hello from a wasinn guest")
