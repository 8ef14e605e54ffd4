import sys

from desktop.app import main

if __name__ == "__main__":  # spawned decoding processes import this module too
    sys.exit(main())
