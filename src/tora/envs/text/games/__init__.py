"""The text games shipped with tora-rl, one ``<game_id>.json`` each (package data)."""
