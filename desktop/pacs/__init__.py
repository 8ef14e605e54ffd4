"""PACS in the desktop: open from and send to a server, the server settings and preferences,
the C-STORE receiver, and the background tasks they run on."""
