"""`python -m driver_terminal …` is the `driver-terminal` command."""

from driver_terminal.cli import main

if __name__ == "__main__":
    main()
