from __future__ import annotations

from hpo.cli import main

if __name__ == "__main__":
    main()
