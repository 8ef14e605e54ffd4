"""The batch dialog: a folder analysed in a child process (``desktop.core.batch_child``), its
rows in a filterable table."""
