"""The main window: builds the widgets, wires them to the Session, menus, persistent settings."""
