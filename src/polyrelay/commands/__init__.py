"""The CLI's parts: one module per command group and the pieces they share (see polyrelay.cli)."""
