"""One module per library whose private behaviour sltsearch has to work around (see DESIGN.md)."""
