"""``python -m famicli`` (also what ``torchrun -m famicli`` runs)."""

from famicli.cli.app import main

if __name__ == "__main__":
    main()
