"""Where each module of an earlier layout went (written by tools/relayout.py; empty while none has
moved): configs saved before a move (a checkpoint's ``_target_`` strings) are migrated with it
(:func:`resnet_cli.config.migrate_deprecated`)."""

MOVED_MODULES: dict[str, str] = {}
