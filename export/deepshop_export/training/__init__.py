"""What every trainer shares (``deepshop-train`` and its subcommands): the command line's common
options and their checks (settings), the loop (loop: log, checkpoints, deadline, progress, resume,
report), checkpoints and RNG state (checkpoint), the data (data), the run folder's log and
pictures (report), the perceptual losses (losses) and the VGG loss networks (loss_networks).
The dispatcher is ``cli``.  Each family keeps only its network, settings and loss
(``families/*/train.py``).

Nothing is imported here, so a module of this package can be used alone."""
