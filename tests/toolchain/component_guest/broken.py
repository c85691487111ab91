"""A guest module whose import fails (as one needing something only the host has would):
the component's pre-import at build time fails, and importing it at run time must say why."""

raise RuntimeError("needs the host")
