"""``python -m critic.cli``: what the installed ``critic`` command runs (torchrun and SageMaker's
training entry start it this way)."""

from critic.cli import main

main()
