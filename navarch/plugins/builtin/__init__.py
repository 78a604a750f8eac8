"""Plugins that ship with navarch, registered by module name like any other plugin."""
