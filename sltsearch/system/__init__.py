"""The machine and environment a search runs on: device and seeding, CPU threads and workers, writing files
safely (atomic writes, checksums, a full disk) and keeping secrets out of what is printed or written.

Free of sltsearch's other layers (only `sltsearch.errors` below it), so every layer may use it.
"""
