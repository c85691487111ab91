"""wasinn: the reference host, CLI and native mode."""
